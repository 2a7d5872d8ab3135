/*
 * exec/procs.c -- the process backend (exec_internal.h): worker
 * processes, a ring of task slots per worker in shared memory, and a
 * dispatcher thread.
 *
 * Why rings. With one task per mailbox every task cost a round trip
 * through the dispatcher (worker done -> eventfd -> dispatcher wakes,
 * collects, assigns the next -> futex wake), and a wake-up of a sleeping
 * thread costs ~30 us on a small VM, against ~100 ns for a hand-off to a
 * thread that is still spinning. So each worker gets RING slots and up
 * to DEPTH tasks in flight: it goes from one task to the next by itself,
 * and the dispatcher collects finished ones in batches. Both sides spin
 * briefly before they sleep, and each wakes the other only when the
 * other said it sleeps.
 *
 * Mailbox. Each worker has a memfd mapping of its own (sparse: only the
 * pages used cost memory), handed to it at start with an eventfd
 * (workers/process_internal.h): a header, RING slot descriptors, a
 * SLOT_DATA region per slot (its argument, then a small result), one big
 * area for what does not fit a region, and the result zone (below). A slot's 64-bit `state` is its
 * index (every task placed in a ring gets the next index; indices are
 * never reused) and a kind:
 *
 *     QUEUED --worker CAS--> TAKEN --worker stores the outcome--> DONE
 *        \--CAS by the dispatcher or a canceller--> WITHDRAWN
 *
 * The dispatcher writes a slot's task and then stores QUEUED (release);
 * the worker takes slots in index order with a CAS and, once it has
 * written code and result, stores DONE (seq_cst: see "Sleeping"); the
 * dispatcher reads the outcome after an acquire load of DONE. A slot
 * still QUEUED can be taken back (WITHDRAWN) by whoever wins the CAS
 * against the worker: the dispatcher (to move it to an idle worker, or
 * because its worker died, passed a deadline or is being killed) or a
 * thread cancelling it (mproc_future_cancel, shutdown(cancel_futures)).
 * Because the index is part of the word the CAS compares, a stale view of
 * a slot that has since been reused can never withdraw the wrong task.
 * The worker skips a withdrawn slot. So every task placed in a ring runs
 * at most once, and is either run, withdrawn (and then re-placed or
 * cancelled), or -- if it was TAKEN when its worker died -- failed: a
 * worker only ever has one TAKEN slot, the task it was running.
 *
 * The dispatcher's own view of a ring is [head, tail): indices placed and
 * not yet passed by collect(), which passes DONE slots (delivering their
 * outcome) and WITHDRAWN ones, in order. fut[pos] holds the future of the
 * slot at ring position pos (an atomic pointer: cancellers read it; it is
 * written before the slot's QUEUED store, so a canceller that saw QUEUED
 * with acquire sees it too).
 *
 * Big area. A task whose argument does not fit a slot region is placed
 * only into an empty ring and owns the big area (`big` holds its slot's
 * tag) until collected; a result that does not fit its region claims the
 * big area from the worker (CAS 0 -> tag), waiting if an older slot that
 * the dispatcher has not collected yet still owns it. The owner is always
 * the oldest uncollected slot, so the wait always ends. The dispatcher
 * frees it when it passes the owning slot.
 *
 * Results in place. Each mailbox ends in a zone of ZONE_SIZE bytes
 * (sparse) where the worker writes every result of ZONE_MIN bytes or
 * more; the parent maps the same memfd, so the future's result points
 * into the zone and nothing is copied back. The zone is a ring over
 * logical positions (a byte at p lives at p % ZONE_SIZE; a result never
 * wraps, it starts over at the zone's start instead): the worker writes
 * results one after the other and tells the slot where each starts
 * (res_zone[pos], SL_RES_ZONE); the parent (struct zone) keeps the ones
 * futures hold, in order, and publishes zone_free, the start of the
 * oldest one still held (or the end of the last handed over): the
 * worker may write only below zone_free + ZONE_SIZE, so a held result is
 * never overwritten. Futures release results in any order; zone_free
 * moves past a result once it and every older one are dropped. When
 * zone_free equals the worker's own position nothing is held and the
 * next result starts at the zone's start again, so a worker's zone uses
 * only as many pages as its results in flight; a worker idle for
 * ZONE_IDLE_NS with nothing held gives back all but ZONE_KEEP bytes of
 * them (not sooner: pages that stay are mapped on both sides already). A result
 * with no room in the zone (the caller holds too many) is written as a
 * small one is -- in the slot's region or the big area -- and copied.
 * The mailbox (and so a held result) stays mapped until the pool and
 * every future holding one of its results are gone; a new process of the
 * same worker starts writing after the last result handed over.
 *
 * Deadlines. A slot carries its task's limit; the worker writes the time
 * it took the slot (only when there is a limit). The dispatcher stops a
 * worker whose TAKEN slot is past its limit, after taking back every
 * QUEUED slot behind it (so the signal cannot hit a later task), and
 * only if the slot is still TAKEN then: SIGTERM, then SIGKILL. A task
 * queued behind a running one starts when that one is DONE, which wakes
 * the dispatcher, so sleeping until the nearest known deadline is enough.
 *
 * Worker death. A worker that ended: its DONE slots are delivered (their
 * results are whole), its TAKEN slot fails (MPROC_EWORKERDIED with a
 * message naming its pid and what ended it; MPROC_ETASKTIMEOUT,
 * MPROC_EMEMLIMIT, or cancelled after MPROC_CANCEL_KILL), its QUEUED
 * slots are withdrawn and go back to the front of the queue; the worker
 * is replaced.
 *
 * Placement. Submitters append to a pending list under a mutex; the
 * dispatcher takes the whole list at once and places each task into an
 * idle worker's ring if there is one, else round robin into rings with
 * fewer than DEPTH tasks in flight. Before that, a worker with an empty
 * ring gets the older half of the QUEUED slots behind the running task of
 * the busiest ring (taken back and placed again), so a long task does not
 * hold up the tasks queued behind it while another worker idles, and
 * tasks start roughly in the order they came. max_tasks_per_child counts
 * tasks placed: after the last one a process gets `quit`, which it obeys
 * once its ring is drained.
 *
 * Sleeping. A worker with nothing to take spins a few times with
 * back-off (sync's mproc_backoff), then polls for up to WORKER_SPIN_NS
 * yielding the CPU between looks -- on a small machine the dispatcher and
 * the submitters need that CPU more than a spinning worker does; pure
 * spinning measured 2-3x slower with 2 cores -- then sets `wsleep` and
 * sleeps on `tailw`, which the dispatcher bumps after publishing (and
 * wakes it if wsleep). The dispatcher, with nothing to do, polls the
 * same way for DISPATCH_SPIN_NS if its last sleep was short (work comes
 * often), then sets `pwake` in every busy mailbox and `sleeping` for
 * submitters, looks once more and polls the eventfd and every worker's
 * end-of-process descriptor; a worker storing DONE, or a submitter,
 * writes the eventfd only if it swaps pwake / sleeping from 1 to 0. Each
 * pair is a Dekker handshake (the store of one flag and the load of the
 * other are seq_cst). While busy, the dispatcher polls for ended workers
 * every millisecond.
 *
 * Maps. The pool has a heap shared with every worker (pheap.c, handed
 * over at start as a third descriptor): map copies a chunk's items there
 * and the worker writes fixed-size results there in place, so a chunk's
 * message is a small header that place() has map.c write straight into
 * the slot (mproc__map_pack), and nothing comes back but failures.
 *
 * Cancelling. A canceller looks for the future in every ring and
 * withdraws it (it then ends cancelled in the canceller's thread, which
 * is also where its callbacks run); a running task gets its slot's
 * `cancel` word set (mproc_cancel_requested), or with MPROC_CANCEL_KILL
 * its worker is stopped as for a deadline. shutdown(cancel_futures)
 * withdraws every QUEUED slot the same way.
 *
 * Shutdown. The dispatcher leaves once shutdown is set, no submit is in
 * flight, nothing is pending and every ring is empty; then it tells every
 * worker to quit and joins it.
 *
 * Functions (workers/fnref.h) travel as words: their addresses for fork
 * and forkserver workers, (object, offset) references for spawned ones.
 * The dispatcher encodes a task's function as it places it (a task whose
 * function a spawned worker cannot find fails there, with
 * MPROC_ENOSYMBOL); the worker decodes it.
 *
 * MPROC_JOBSERVER (exec/jobserver.h). A worker with tasks in its ring
 * holds one token of the shared pool: the dispatcher takes it before
 * placing a task into an empty ring (token_take) and gives it back once
 * the ring is empty again, however that came about -- results collected,
 * process died, stopped for a deadline or a cancel, retired --
 * (token_give, after collect() and in worker_died), and for every worker
 * when it leaves. A busy worker's ring takes more tasks under the token it
 * holds. With tasks pending and no token free it also polls the pool's
 * descriptor.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
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
#include "exec/memcg.h"
#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/shmap.h"
#include "os/sys.h"
#include "sync/mutex.h"
#include "workers/fnref.h"
#include "workers/process_internal.h"

#define RING 32u                        /* slots per worker: a power of two */
#define DEPTH 32u                       /* tasks in flight per worker, <= RING */
#define SLOT_DATA ((size_t)64 << 10)    /* a slot's region: argument, then result */
#define BIG_SIZE ((size_t)64 << 20)     /* the big area */
#define HDR_SIZE ((size_t)16 << 10)     /* struct mailbox, page-rounded */
#define ZONE_SIZE ((size_t)256 << 20)   /* the result zone, sparse */
#define ZONE_MIN ((size_t)4096)         /* smaller results are copied */
#define ZONE_KEEP ((size_t)8 << 20)     /* an idle worker keeps this much of it */
#define ZONE_IDLE_NS 500000000          /* idle this long, it gives back the rest */
#define ZONE_OFF (HDR_SIZE + RING * SLOT_DATA + BIG_SIZE)
#define MAILBOX_SIZE (ZONE_OFF + ZONE_SIZE)
#define ARG_MAX_BYTES ((size_t)32 << 20)
#define HEAP_SIZE ((size_t)256 << 20)   /* the pool's shared heap (pheap.c), sparse */
#define MAX_PROC_WORKERS 1024
#define KILL_GRACE_NS 200000000 /* SIGTERM, then SIGKILL this much later */
#define POLL_MAX_MS 100
#define BUSY_POLL_NS 1000000    /* while busy, look for ended workers this often */
/* How long each side polls (yielding the CPU) before it sleeps: a
 * sleeping thread's wake-up costs ~30 us on a small VM. */
#define DISPATCH_SPIN_NS 50000
#define WORKER_SPIN_NS 50000
/* Workers whose initializer fails or crashes are started again after
 * 10, 20, 40 ms; the fourth failure in a row breaks the executor. */
#define INIT_RETRIES 3
#define INIT_BACKOFF_NS 10000000

_Static_assert((RING & (RING - 1)) == 0 && DEPTH <= RING, "RING is a power of two");

enum { S_QUEUED = 1, S_TAKEN = 2, S_DONE = 3, S_WITHDRAWN = 4 };
#define ST(idx, kind) ((uint64_t)(idx) << 3 | (uint64_t)(kind))
#define ST_IDX(st) ((st) >> 3)
#define ST_KIND(st) ((unsigned)((st) & 7))

/* slot.flags */
#define SL_ARG_BIG 0x1u /* the argument is in the big area (dispatcher) */
#define SL_RES_BIG 0x2u /* the result is in the big area (worker) */
#define SL_OOM 0x4u     /* the task failed with -ENOMEM under a memory limit */
#define SL_MSG 0x8u     /* message[pos] holds a failure message */
#define SL_RES_ZONE 0x10u /* the result is in the zone at res_zone[pos] (worker) */

struct slot {
    uint64_t state;   /* ST(index, kind); see the top of the file */
    uint64_t fn;      /* the task: its address, or a reference (spawn; workers/fnref.h) */
    uint64_t arg_len;
    uint64_t res_len;
    int64_t limit_ms; /* the task's deadline, 0: none */
    int64_t start_ns; /* when the worker took it (only with a limit) */
    uint32_t flags;   /* SL_* */
    uint32_t cancel;  /* the parent asks the running task to stop */
    int32_t code;
    uint32_t pad;
};

_Static_assert(sizeof(struct slot) == 64, "a slot is one cache line");

struct mailbox {
    /* Written by the parent. */
    _Alignas(64) uint32_t tailw; /* futex: bumped after publishing slots or quit */
    uint32_t quit;               /* exit once nothing published is left */
    uint64_t start_idx;          /* the first index this process takes */
    int32_t worker;              /* index, for mproc_ctx_worker */
    /* Written by the worker. */
    _Alignas(64) uint32_t wsleep; /* it sleeps (or is about to) on tailw */
    int32_t ready;                /* the worker's initializer has succeeded */
    int32_t init_failed;
    int32_t oom;                  /* the running task went past the memory limit */
    char init_why[F_MESSAGE_MAX]; /* why the initializer could not be found */
    /* Both. */
    _Alignas(64) uint32_t pwake; /* the dispatcher sleeps: DONE writes the eventfd */
    uint32_t big;                /* tag of the slot owning the big area, 0: free */
    uint32_t big_wait;           /* the worker waits for the big area */
    /* The result zone (see "Results in place"). */
    _Alignas(64) uint64_t zone_free; /* parent: may write up to this + ZONE_SIZE */
    uint64_t zone_pos0;              /* parent: where a new process starts writing */
    uint64_t zone_high;              /* worker: bytes of the zone touched, kept
                                        across its processes */
    _Alignas(64) struct slot slots[RING];
    uint64_t res_zone[RING];         /* worker: where SL_RES_ZONE results start */
    char message[RING][F_MESSAGE_MAX];
};

_Static_assert(sizeof(struct mailbox) <= HDR_SIZE, "the mailbox header fits");

/* The big area's owner tag for slot index idx: never 0. */
static uint32_t big_tag(uint64_t idx)
{
    return (uint32_t)(idx % 0x7fffffffu) + 1;
}

static size_t align64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

/* A result the parent holds in a worker's zone: logical [start, end). */
struct zlive {
    uint64_t start, end;
    bool dropped;
};

/* A worker's mailbox, kept as long as the pool or a result in its zone
 * needs it, and the zone's results that futures hold (a ring of `cap`
 * entries in start order). */
struct zone {
    uint32_t refs;
    uint32_t lock;          /* sync/mutex.h: the fields below */
    mproc__shmap map;       /* the whole mailbox */
    uint64_t delivered_end; /* end of the last result handed over */
    struct zlive *live;
    size_t cap, first, n;
};

struct pworker {
    struct ppool *pp;
    int index;
    mproc_process *proc;
    struct zone *zone;
    struct mailbox *mb;
    unsigned char *regions; /* RING * SLOT_DATA bytes */
    unsigned char *big;     /* BIG_SIZE bytes */
    uint64_t head, tail;    /* [head, tail): placed, not yet passed by collect */
    mproc_future *fut[RING];/* atomic: the task of each position in [head, tail) */
    unsigned placed;        /* tasks placed into this process (max_tasks_per_child) */
    bool woken;             /* got tasks this round: bump tailw */
    /* Stopping the process (a deadline, MPROC_CANCEL_KILL). */
    bool timed_out;         /* victim passed its deadline */
    bool cancel_killed;     /* victim was cancelled */
    uint64_t victim;        /* the TAKEN slot being stopped */
    int64_t victim_limit;   /* its deadline, for the message */
    int64_t kill_at;        /* SIGTERM turns into SIGKILL then */
    int64_t restart_at;     /* no new process before this (init back-off) */
    bool retiring;          /* told to quit after max_tasks_per_child */
    bool oom_retiring;      /* quits by itself after a task ran out of memory */
    bool token;             /* holds a jobserver token (MPROC_JOBSERVER) */
    uint64_t cg_kills;      /* its cgroup's OOM kills when this process started */
};

struct ppool {
    mproc_executor base;
    struct pworker *w;
    mproc_start_method start;
    uint64_t init_word;     /* the initializer for the workers (workers/fnref.h) */
    int64_t task_timeout_ms;
    unsigned max_tasks;     /* per worker process, 0: no limit */
    size_t mem_limit;       /* worker_memory_limit, 0: none */
    mproc_memory_limit_kind mem_how; /* how it is enforced */
    struct mproc__memcg memcg;       /* the workers' cgroups (mem_how CGROUP*) */
    bool cancel_kill;       /* MPROC_CANCEL_KILL */
    bool jobserver;         /* MPROC_JOBSERVER */
    bool token_wait;        /* tasks wait for a jobserver token */
    unsigned init_failures; /* in a row, across workers */
    /* Counters (mproc_executor_stats): written by the dispatcher only,
     * except `pending_n`; read with relaxed loads. */
    uint64_t done, failed, worker_died, timed_out, out_of_memory;
    uint64_t r_died, r_timeout, r_recycled, r_init, r_memory;
    uint64_t pending_n;     /* not placed yet: pending, mine, redo (atomic) */
    char broken_why[F_MESSAGE_MAX];
    struct mproc__pheap *heap; /* shared with the workers: map items and results */
    int evfd;
    pthread_t dispatcher;
    bool dispatcher_started;
    /* The dispatcher's own queues: `redo` holds claimed tasks taken back
     * from a ring (run first), `mine` the pending tasks it took. */
    mproc_future *redo_head, *redo_tail, *mine_head, *mine_tail;
    unsigned rr;            /* where the next round-robin placement starts */
    uint64_t nsub_seen;     /* nsub when the pending list was last taken */
    /* Shared with submitters. */
    _Alignas(64) uint32_t qlock; /* sync/mutex.h: the pending list */
    mproc_future *head, *tail;
    uint64_t nsub;          /* submits so far (seq_cst, see "Sleeping") */
    uint32_t sleeping;      /* the dispatcher sleeps: a submit writes the eventfd */
};

static struct ppool *ppool_of(mproc_executor *ex)
{
    return (struct ppool *)ex;
}

/* Is pp's memory limit a cgroup per worker (memcg.h)? */
static bool by_cgroup(const struct ppool *pp)
{
    return pp->memcg.dirfd >= 0;
}

static void poke(struct ppool *pp)
{
    uint64_t one = 1;
    ssize_t w = write(pp->evfd, &one, sizeof one);
    (void)w; /* a full counter still wakes the dispatcher */
}

/* Add one to a counter that only the dispatcher writes. */
static void bump(uint64_t *c)
{
    mproc__store_relaxed(c, *c + 1);
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

/* A worker's side of its result zone. */
struct wzone {
    unsigned char *base; /* ZONE_SIZE bytes */
    int fd;              /* the mailbox's memfd, for giving pages back */
    uint64_t pos;        /* where the next result may start (logical) */
};

/* Where a task's result is being written. */
enum { R_REGION, R_BIG, R_ZONE };

/* The task a worker runs, as its context sees it. */
struct wtask {
    struct mailbox *mb;
    struct slot *s;
    unsigned pos;
    uint64_t idx;
    unsigned char *region; /* the slot's own region */
    unsigned char *big;
    struct wzone *zone;
    size_t res_off;        /* where a result starts: after the argument */
    bool arg_big;
    unsigned where;        /* R_*: where the result is */
    size_t res_len;
    uint64_t zstart;       /* its logical start, when in the zone */
};

static uint64_t zone_up(uint64_t pos)
{
    return (pos + ZONE_SIZE - 1) / ZONE_SIZE * ZONE_SIZE;
}

static size_t page_up(size_t n)
{
    return (n + ZONE_MIN - 1) & ~(ZONE_MIN - 1);
}

/* Room for t's len-byte result in the zone (growing it in place if it is
 * there already), or NULL when the zone has no room for it. */
static unsigned char *zone_room(struct wtask *t, size_t len)
{
    struct wzone *z = t->zone;
    size_t need = page_up(len);
    if (len > ZONE_SIZE)
        return NULL;
    /* Acquire: the parent's readers of the results it dropped are done. */
    uint64_t zfree = mproc__load_acquire(&t->mb->zone_free);
    bool empty = zfree == z->pos;
    uint64_t start = t->zstart;
    if (t->where != R_ZONE) {
        start = empty ? zone_up(z->pos) : z->pos; /* empty: back to the zone's start */
        if (start % ZONE_SIZE + need > ZONE_SIZE)
            start = zone_up(start + 1);
    }
    if (start % ZONE_SIZE + need > ZONE_SIZE || (!empty && start + need > zfree + ZONE_SIZE))
        return NULL;
    t->zstart = start;
    uint64_t end = start % ZONE_SIZE + need;
    if (end > mproc__load_relaxed(&t->mb->zone_high))
        mproc__store_relaxed(&t->mb->zone_high, end);
    return z->base + start % ZONE_SIZE;
}

/* May the worker give back pages of its zone: more than ZONE_KEEP bytes
 * of it touched, and no result held (the next one starts at the zone's
 * start)? Asked after wsleep is set: the parent dropping the last result
 * either sees wsleep and wakes us, or we see its zone_free here (seq_cst
 * on both sides). */
static bool zone_trimmable(const struct mailbox *mb, const struct wzone *z)
{
    return mproc__load_relaxed(&mb->zone_high) > ZONE_KEEP &&
           __atomic_load_n(&mb->zone_free, __ATOMIC_SEQ_CST) == z->pos;
}

/* Give back the zone's pages past its first ZONE_KEEP bytes, if nothing
 * is held (a worker idle for ZONE_IDLE_NS: while results keep coming,
 * the pages stay mapped on both sides). */
static void zone_trim(struct mailbox *mb, const struct wzone *z)
{
    if (!zone_trimmable(mb, z))
        return;
    uint64_t high = mproc__load_relaxed(&mb->zone_high);
    (void)fallocate(z->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                    (off_t)(ZONE_OFF + ZONE_KEEP), (off_t)(high - ZONE_KEEP));
    mproc__store_relaxed(&mb->zone_high, ZONE_KEEP);
}

/* Wait until the big area is free or ours, then own it. */
static void claim_big(struct wtask *t)
{
    uint32_t tag = big_tag(t->idx);
    mproc_backoff b;
    mproc_backoff_init(&b, 200, 20000);
    for (;;) {
        uint32_t o = 0;
        if (mproc__cas(&t->mb->big, &o, tag, __ATOMIC_ACQUIRE) || o == tag)
            return;
        if (mproc_backoff_attempts(&b) < 16) {
            mproc_backoff_wait(&b);
            continue;
        }
        /* Held by an older slot that the dispatcher has yet to collect:
         * its DONE woke the dispatcher; sleep until it frees the area. */
        __atomic_store_n(&t->mb->big_wait, 1, __ATOMIC_SEQ_CST);
        o = __atomic_load_n(&t->mb->big, __ATOMIC_SEQ_CST);
        if (o != 0 && o != tag)
            mproc__futex_wait(&t->mb->big, o, mproc__now() + 10000000, true);
        mproc__store_relaxed(&t->mb->big_wait, 0);
    }
}

/* Where t's result is now. */
static unsigned char *result_at(const struct wtask *t)
{
    switch (t->where) {
    case R_ZONE: return t->zone->base + t->zstart % ZONE_SIZE;
    case R_BIG: return t->big + (t->arg_big ? t->res_off : 0);
    default: return t->region + t->res_off;
    }
}

/* Room for a len-byte result: in the zone from ZONE_MIN bytes on (the
 * parent then reads it in place), else in the slot's region, else in the
 * big area (which, once claimed, the result keeps). The bytes already
 * written are kept when the room grows or moves (map chunks rely on it). */
static void *worker_room(mproc_ctx *ctx, size_t len)
{
    struct wtask *t = ctx->owner;
    unsigned char *old = t->res_len ? result_at(t) : NULL, *p;
    unsigned where;
    size_t off = t->arg_big ? t->res_off : 0;
    if (len >= ZONE_MIN && t->where != R_BIG && (p = zone_room(t, len))) {
        where = R_ZONE;
    } else if (!t->arg_big && t->where != R_BIG && len <= SLOT_DATA - t->res_off) {
        where = R_REGION;
        p = t->region + t->res_off;
    } else {
        if (len > BIG_SIZE - off)
            return NULL;
        if (!t->arg_big && t->where != R_BIG)
            claim_big(t);
        where = R_BIG;
        p = t->big + off;
    }
    size_t keep = t->res_len < len ? t->res_len : len;
    if (p != old && keep > 0)
        memcpy(p, old, keep); /* different areas: no overlap */
    t->where = where;
    t->res_len = len;
    return p;
}

static void worker_message(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    struct wtask *t = ctx->owner;
    vsnprintf(t->mb->message[t->pos], F_MESSAGE_MAX, fmt, ap);
    t->s->flags |= SL_MSG;
}

static bool worker_cancel_requested(const mproc_ctx *ctx)
{
    const struct wtask *t = ctx->owner;
    return mproc__load_relaxed(&t->s->cancel) != 0;
}

static const struct mproc__ctx_ops worker_ctx_ops = {
    .room = worker_room,
    .message = worker_message,
    .cancel_requested = worker_cancel_requested,
};

/* Has slot s been published with index idx or later? */
static bool published(const struct slot *s, uint64_t idx)
{
    return ST_IDX(mproc__load_acquire(&s->state)) >= idx;
}

/* Wait until slot s is published for index idx (true) or the parent
 * says quit with nothing left to take (false). First a few short spins
 * (the dispatcher may be placing right now), then polls that yield the
 * CPU (on a small machine the dispatcher and the submitters need it more
 * than a spinning worker does), then sleep. */
static bool worker_wait(struct mailbox *mb, const struct wzone *z, const struct slot *s,
                        uint64_t idx)
{
    mproc_backoff b;
    mproc_backoff_init(&b, 100, 800);
    int64_t spin_until = mproc__now() + WORKER_SPIN_NS;
    for (;;) {
        if (published(s, idx))
            return true;
        /* quit comes after the last publish: seen it, see the publish. */
        if (mproc__load_acquire(&mb->quit))
            return published(s, idx);
        if (mproc_backoff_attempts(&b) < 4) {
            mproc_backoff_wait(&b);
            continue;
        }
        if (mproc__now() < spin_until) {
            sched_yield();
            continue;
        }
        /* Dekker with the dispatcher's publish: it bumps tailw (seq_cst)
         * and then reads wsleep; we set wsleep and then read tailw. */
        __atomic_store_n(&mb->wsleep, 1, __ATOMIC_SEQ_CST);
        uint32_t seen = __atomic_load_n(&mb->tailw, __ATOMIC_SEQ_CST);
        bool trim = zone_trimmable(mb, z);
        int64_t until = trim ? mproc__now() + ZONE_IDLE_NS : MPROC__FOREVER;
        if (!published(s, idx) && !mproc__load_acquire(&mb->quit)) {
            mproc__futex_wait(&mb->tailw, seen, until, true);
            if (trim && mproc__now() >= until)
                zone_trim(mb, z);
        }
        mproc__store_relaxed(&mb->wsleep, 0);
        mproc_backoff_reset(&b);
        spin_until = mproc__now() + WORKER_SPIN_NS; /* more may follow this one */
    }
}

/* The task every worker process runs: serve its ring until told to quit. */
static int worker_main(const void *arg, size_t len, mproc_ctx *pctx)
{
    (void)len;
    (void)pctx;
    const struct worker_arg *wa = arg;
    mproc__shmap map;
    int evfd = mproc__process_fd(1);
    if (mproc__process_fd(0) < 0 || evfd < 0 || mproc__shmap_attach(&map, mproc__process_fd(0)) != 0 ||
        mproc__process_fd(2) < 0 || mproc__pheap_worker_attach(mproc__process_fd(2)) != 0)
        return -EBADF;
    struct mailbox *mb = map.addr;
    unsigned char *regions = (unsigned char *)map.addr + HDR_SIZE;
    unsigned char *big = regions + RING * SLOT_DATA;
    struct wzone zone = { (unsigned char *)map.addr + ZONE_OFF, mproc__process_fd(0),
                          mb->zone_pos0 };
    uint64_t one = 1;
    bool refs = wa->refs != 0;
    bool ok = true;
    int cgfd = mproc__process_fd(3); /* the cgroup to move into, if any */
    if (cgfd >= 0) {
        int rc = mproc__memcg_join(cgfd);
        close(cgfd);
        if (rc != 0) {
            snprintf(mb->init_why, sizeof mb->init_why, "could not join its memory cgroup: %s",
                     strerror(-rc));
            ok = false;
        }
    }
    ok = ok && (!wa->mem_limit || limit_memory(mb, (size_t)wa->mem_limit) == 0);
    if (ok && wa->initializer) {
        void *a, *initarg = wa->initarg_len ? (void *)(wa + 1) : (void *)(uintptr_t)wa->initarg;
        int (*init)(void *);
        ok = mproc__fnref_decode(wa->initializer, refs, &a, mb->init_why, sizeof mb->init_why) == 0;
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
    for (uint64_t next = mb->start_idx;;) {
        unsigned pos = (unsigned)(next % RING);
        struct slot *s = &mb->slots[pos];
        uint64_t st = mproc__load_acquire(&s->state);
        if (ST_IDX(st) < next) {
            if (!worker_wait(mb, &zone, s, next))
                return 0;
            continue;
        }
        /* Withdrawn, or withdrawn and its position already reused. */
        if (ST_IDX(st) > next || ST_KIND(st) != S_QUEUED) {
            next++;
            continue;
        }
        /* Acquire: pairs with the dispatcher's QUEUED store, so the
         * task's fields are visible; a failed CAS means it was withdrawn. */
        if (!mproc__cas(&s->state, &st, ST(next, S_TAKEN), __ATOMIC_ACQUIRE))
            continue;
        if (s->limit_ms)
            mproc__store_relaxed(&s->start_ns, mproc__now());
        mproc_task_fn fn;
        void *addr;
        struct wtask t = { .mb = mb, .s = s, .pos = pos, .idx = next,
                           .region = regions + (size_t)pos * SLOT_DATA, .big = big,
                           .zone = &zone, .arg_big = (s->flags & SL_ARG_BIG) != 0 };
        size_t alen = (size_t)s->arg_len;
        t.res_off = align64(alen);
        struct mproc_ctx ctx = { .ops = &worker_ctx_ops, .owner = &t, .worker = mb->worker };
        const unsigned char *a = t.arg_big ? big : t.region;
        int code = MPROC_ENOSYMBOL; /* with the reason in the message */
        if (mproc__fnref_decode(s->fn, refs, &addr, mb->message[pos], F_MESSAGE_MAX) == 0) {
            memcpy(&fn, &addr, sizeof fn);
            code = fn(alen ? a : NULL, alen, &ctx);
        } else {
            s->flags |= SL_MSG;
        }
        code = code > 0 ? 0 : code;
        s->code = code;
        s->res_len = code == 0 ? t.res_len : 0;
        bool oom = wa->mem_limit && code == -ENOMEM;
        bool in_zone = code == 0 && t.where == R_ZONE;
        if (in_zone) { /* the parent owns it now; the next one goes after it */
            mb->res_zone[pos] = t.zstart;
            zone.pos = t.zstart + page_up(t.res_len);
        }
        s->flags |= (t.where == R_BIG ? SL_RES_BIG : 0u) | (oom ? SL_OOM : 0u) |
                    (in_zone ? SL_RES_ZONE : 0u);
        /* seq_cst: Dekker with the dispatcher's pwake (see the top). */
        __atomic_store_n(&s->state, ST(next, S_DONE), __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&mb->pwake, __ATOMIC_SEQ_CST) &&
            __atomic_exchange_n(&mb->pwake, 0, __ATOMIC_SEQ_CST)) {
            ssize_t w = write(evfd, &one, sizeof one);
            (void)w;
        }
        if (oom) /* under a limit, -ENOMEM is the limit: its heap may be full */
            return 0;
        next++;
    }
}

/* ---- the pending lists ------------------------------------------------------ */

static void list_push(mproc_future **head, mproc_future **tail, mproc_future *f)
{
    f->u.next = NULL;
    if (*tail)
        (*tail)->u.next = f;
    else
        *head = f;
    *tail = f;
}

static mproc_future *list_pop(mproc_future **head, mproc_future **tail)
{
    mproc_future *f = *head;
    if (f) {
        *head = f->u.next;
        if (!*head)
            *tail = NULL;
    }
    return f;
}

static bool shared_pending_empty(struct ppool *pp)
{
    mproc__mutex_lock(&pp->qlock);
    bool empty = pp->head == NULL;
    mproc__mutex_unlock(&pp->qlock);
    return empty;
}

/* Nothing waits to be placed (dispatcher only). */
static bool nothing_pending(struct ppool *pp)
{
    return !pp->redo_head && !pp->mine_head && shared_pending_empty(pp);
}

/* Move the submitters' list to the end of ours (dispatcher only). */
static void take_pending(struct ppool *pp)
{
    uint64_t n = __atomic_load_n(&pp->nsub, __ATOMIC_SEQ_CST);
    if (n == pp->nsub_seen)
        return;
    mproc__mutex_lock(&pp->qlock);
    mproc_future *h = pp->head, *t = pp->tail;
    pp->head = pp->tail = NULL;
    mproc__mutex_unlock(&pp->qlock);
    pp->nsub_seen = n;
    if (!h)
        return;
    if (pp->mine_tail)
        pp->mine_tail->u.next = h;
    else
        pp->mine_head = h;
    pp->mine_tail = t;
}

/* Cancel every task in the submitters' list (any thread). */
static void cancel_shared_pending(struct ppool *pp)
{
    mproc__mutex_lock(&pp->qlock);
    mproc_future *f = pp->head;
    pp->head = pp->tail = NULL;
    mproc__mutex_unlock(&pp->qlock);
    while (f) {
        mproc_future *next = f->u.next;
        mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
        mproc__future_cancel_pending(f);
        mproc_future_release(f);
        f = next;
    }
}

/* End a claimed task from the dispatcher's queues that never ran:
 * cancelled, or failed as broken. */
static void drop_claimed(struct ppool *pp, mproc_future *f, bool broken)
{
    mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
    if (broken) {
        bump(&pp->failed);
        mproc__future_resolve(f, MPROC_EBROKEN, NULL, 0, pp->broken_why);
    } else {
        mproc__future_resolve_cancelled(f);
    }
    mproc_future_release(f); /* the scheduler's reference */
}

/* Empty the dispatcher's queues: cancelled (shutdown(cancel_futures)) or
 * failed with MPROC_EBROKEN. */
static void drop_queued(struct ppool *pp, bool broken)
{
    mproc_future *f;
    while ((f = list_pop(&pp->redo_head, &pp->redo_tail)))
        drop_claimed(pp, f, broken);
    if (!broken)
        cancel_shared_pending(pp);
    else
        take_pending(pp);
    while ((f = list_pop(&pp->mine_head, &pp->mine_tail))) {
        if (broken && mproc__future_claim(f)) {
            drop_claimed(pp, f, true); /* releases it */
            continue;
        }
        mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
        if (!broken)
            mproc__future_cancel_pending(f);
        mproc_future_release(f);
    }
}

/* ---- taking tasks back from a ring ------------------------------------------ */

/*
 * Withdraw the task at position pos of w, seen QUEUED as state *st:
 * returns its future (the caller now holds the scheduler's reference) or
 * NULL if the worker took it or someone else withdrew it first (*st then
 * says which). Any thread. The future is read before the CAS: pos may be
 * reused right after it; the CAS succeeding proves it was this slot's
 * (the acquire load of fut pairs with the dispatcher's release stores
 * when it clears or reuses pos, after it saw the slot leave QUEUED).
 */
static mproc_future *withdraw(struct pworker *w, unsigned pos, uint64_t *st)
{
    mproc_future *f = __atomic_load_n(&w->fut[pos], __ATOMIC_ACQUIRE);
    if (!f || !mproc__cas(&w->mb->slots[pos].state, st, ST(ST_IDX(*st), S_WITHDRAWN),
                          __ATOMIC_ACQ_REL))
        return NULL;
    return f;
}

/* Withdraw f wherever it is QUEUED (any thread); true if we did. */
static bool withdraw_future(struct ppool *pp, mproc_future *f)
{
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        struct pworker *w = &pp->w[i];
        for (unsigned pos = 0; pos < RING; pos++) {
            uint64_t st = mproc__load_acquire(&w->mb->slots[pos].state);
            if (ST_KIND(st) == S_QUEUED && __atomic_load_n(&w->fut[pos], __ATOMIC_ACQUIRE) == f &&
                withdraw(w, pos, &st) == f)
                return true;
        }
    }
    return false;
}

/* Withdraw every QUEUED task and end it cancelled (any thread:
 * shutdown(cancel_futures)). The loads are seq_cst: Dekker with place(),
 * whose QUEUED store is seq_cst and followed by a seq_cst load of
 * `cancelling`, which was stored seq_cst before this sweep. So a task
 * placed while cancelling is set is either seen here or seen by the
 * dispatcher, who then withdraws it itself. */
static void withdraw_all_cancelled(struct ppool *pp)
{
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        struct pworker *w = &pp->w[i];
        for (unsigned pos = 0; pos < RING; pos++) {
            uint64_t st = __atomic_load_n(&w->mb->slots[pos].state, __ATOMIC_SEQ_CST);
            mproc_future *f;
            if (ST_KIND(st) == S_QUEUED && (f = withdraw(w, pos, &st))) {
                mproc__future_resolve_cancelled(f);
                mproc_future_release(f); /* the scheduler's reference */
            }
        }
    }
}

/* Withdraw up to max of w's QUEUED tasks with index > after and put them
 * at the front of `redo`, in their order (dispatcher only). Newest first
 * (`oldest` false: stopping a worker takes them all), or oldest first,
 * stopping where the worker has got to (moving tasks to an idle worker:
 * those have waited longest). Returns how many. */
static unsigned take_back(struct ppool *pp, struct pworker *w, uint64_t after, unsigned max,
                          bool oldest)
{
    mproc_future *h = NULL, *t = NULL;
    unsigned n = 0;
    uint64_t first = after + 1 > w->head ? after + 1 : w->head;
    for (uint64_t k = 0; first + k < w->tail && n < max; k++) {
        uint64_t idx = oldest ? first + k : w->tail - 1 - k;
        unsigned pos = (unsigned)(idx % RING);
        uint64_t st = mproc__load_acquire(&w->mb->slots[pos].state);
        mproc_future *f = ST_KIND(st) == S_QUEUED ? withdraw(w, pos, &st) : NULL;
        if (!f) {
            if (ST_KIND(st) == S_TAKEN || ST_KIND(st) == S_DONE)
                break; /* the worker got here: newest first, it has all before */
            continue;  /* a canceller withdrew it */
        }
        __atomic_store_n(&w->fut[pos], NULL, __ATOMIC_RELEASE);
        if (oldest) { /* append */
            f->u.next = NULL;
            if (t)
                t->u.next = f;
            else
                h = f;
            t = f;
        } else { /* prepend */
            f->u.next = h;
            h = f;
            if (!t)
                t = f;
        }
        n++;
    }
    if (h) {
        t->u.next = pp->redo_head;
        pp->redo_head = h;
        if (!pp->redo_tail)
            pp->redo_tail = t;
        mproc__fetch_add(&pp->pending_n, n, __ATOMIC_RELAXED); /* queued again */
    }
    return n;
}

/* ---- the result zone, parent side ---------------------------------------- */

static int zone_create(struct zone **out)
{
    struct zone *z = calloc(1, sizeof *z);
    int rc = z ? mproc__shmap_create(&z->map, "mproc-mailbox", MAILBOX_SIZE, 0) : -ENOMEM;
    if (rc != 0) {
        free(z);
        return rc;
    }
    z->refs = 1;
    z->lock = MPROC__MUTEX_INIT;
    *out = z;
    return 0;
}

static void zone_release(struct zone *z)
{
    /* acq_rel: every read of a result before the unmap. */
    if (!z || mproc__fetch_sub(&z->refs, 1, __ATOMIC_ACQ_REL) != 1)
        return;
    mproc__shmap_destroy(&z->map);
    free(z->live);
    free(z);
}

static struct zlive *zone_at(struct zone *z, size_t i)
{
    return &z->live[(z->first + i) % z->cap];
}

/* Tell the worker how far it may write: up to ZONE_SIZE past the oldest
 * result still held, or past everything handed over (under the lock). */
static void zone_publish(struct zone *z)
{
    struct mailbox *mb = z->map.addr;
    uint64_t v = z->n ? zone_at(z, 0)->start : z->delivered_end;
    /* Release: whoever read a dropped result did so before the worker
     * may overwrite it; seq_cst: see zone_trim. */
    __atomic_store_n(&mb->zone_free, v, __ATOMIC_SEQ_CST);
    /* Empty now, and big: a sleeping worker wakes to trim it. */
    if (z->n == 0 && mproc__load_relaxed(&mb->zone_high) > ZONE_KEEP &&
        __atomic_load_n(&mb->wsleep, __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&mb->tailw, 1, __ATOMIC_SEQ_CST);
        mproc__futex_wake(&mb->tailw, 1, true);
    }
}

/* The result of len bytes the worker left at logical `start`, or NULL if
 * that is not where a result can be (dispatcher only). */
static unsigned char *zone_result(struct zone *z, uint64_t start, size_t len)
{
    if (len < ZONE_MIN || len > ZONE_SIZE || start < z->delivered_end ||
        start % ZONE_SIZE + page_up(len) > ZONE_SIZE)
        return NULL;
    return (unsigned char *)z->map.addr + ZONE_OFF + start % ZONE_SIZE;
}

/* Keep the result at [start, end) for a future: the worker will not
 * write there until zone_drop. False when out of memory (nothing kept:
 * copy the result, then zone_pass). Dispatcher only. */
static bool zone_keep(struct zone *z, uint64_t start, uint64_t end)
{
    mproc__mutex_lock(&z->lock);
    bool ok = z->n < z->cap;
    if (!ok) {
        size_t cap = z->cap ? 2 * z->cap : 16;
        struct zlive *nl = malloc(cap * sizeof *nl);
        if ((ok = nl != NULL)) {
            for (size_t i = 0; i < z->n; i++)
                nl[i] = *zone_at(z, i);
            free(z->live);
            z->live = nl;
            z->cap = cap;
            z->first = 0;
        }
    }
    if (ok) {
        *zone_at(z, z->n++) = (struct zlive){ start, end, false };
        z->delivered_end = end;
        mproc__fetch_add(&z->refs, 1, __ATOMIC_RELAXED);
        zone_publish(z);
    }
    mproc__mutex_unlock(&z->lock);
    return ok;
}

/* The result ending at `end` was copied out: the worker may reuse it. */
static void zone_pass(struct zone *z, uint64_t end)
{
    mproc__mutex_lock(&z->lock);
    z->delivered_end = end;
    zone_publish(z);
    mproc__mutex_unlock(&z->lock);
}

/* A future lets go of the result starting at `start` (any thread). */
static void zone_drop(void *owner, uint64_t start)
{
    struct zone *z = owner;
    mproc__mutex_lock(&z->lock);
    size_t lo = 0, hi = z->n; /* the entries are in start order */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (zone_at(z, mid)->start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < z->n && zone_at(z, lo)->start == start)
        zone_at(z, lo)->dropped = true;
    while (z->n && zone_at(z, 0)->dropped) {
        z->first = (z->first + 1) % z->cap;
        z->n--;
    }
    zone_publish(z);
    mproc__mutex_unlock(&z->lock);
    zone_release(z);
}

/* ---- starting and replacing workers ----------------------------------- */

static int worker_start(struct ppool *pp, struct pworker *w)
{
    if (!w->mb) {
        int rc = zone_create(&w->zone);
        if (rc != 0)
            return rc;
        w->mb = w->zone->map.addr;
        w->regions = (unsigned char *)w->mb + HDR_SIZE;
        w->big = w->regions + RING * SLOT_DATA;
        w->head = w->tail = 1; /* index 0 is what a zeroed slot says */
    }
    struct mailbox *mb = w->mb;
    /* Every slot before tail is DONE or WITHDRAWN (worker_died passed
     * them all): the new process starts at tail. */
    mb->start_idx = w->tail;
    mb->quit = 0;
    mproc__store_relaxed(&mb->wsleep, 0); /* zone_publish may read it meanwhile */
    mb->pwake = 0;
    mb->big = 0;
    mb->big_wait = 0;
    mb->ready = 0;
    mb->init_failed = 0;
    mb->oom = 0;
    mb->zone_pos0 = w->zone->delivered_end; /* results before it are handed over */
    mb->worker = w->index;
    mb->init_why[0] = '\0'; /* an initializer that cannot be found says why here */
    w->placed = 0;
    int fds[4] = { w->zone->map.fd, pp->evfd, mproc__pheap_fd(pp->heap), -1 };
    int nfds = 3;
    if (by_cgroup(pp)) {
        /* Made again if someone removed it; the worker moves itself in. */
        if ((fds[3] = mproc__memcg_worker(&pp->memcg, w->index, &w->cg_kills)) < 0)
            return fds[3];
        nfds = 4;
    }
    size_t ilen = pp->base.initarg_len;
    struct worker_arg *wa = malloc(sizeof *wa + ilen);
    if (!wa) {
        if (nfds == 4)
            close(fds[3]);
        return -ENOMEM;
    }
    bool rlimit = pp->mem_how == MPROC_MEMLIMIT_RLIMIT_AS;
    *wa = (struct worker_arg){ w->index, pp->base.fn_refs, pp->init_word,
                               (uint64_t)(uintptr_t)pp->base.initarg, ilen,
                               rlimit ? pp->mem_limit : 0 };
    if (ilen > 0)
        memcpy(wa + 1, pp->base.initarg, ilen);
    char name[48];
    snprintf(name, sizeof name, "%s-%d", pp->base.name, w->index);
    mproc_process *p = NULL;
    int rc = mproc_process_create(&p, &(mproc_process_opts){ .fn = worker_main, .arg = wa,
                                                             .len = sizeof *wa + ilen, .name = name,
                                                             .daemon = true, .start = pp->start,
                                                             .flags = MPROC_FORK_THREADS });
    free(wa);
    bool made = rc == 0;
    if (rc == 0 && (rc = mproc__process_set_fds(p, fds, nfds)) == 0 &&
        (rc = mproc_process_start(p)) == 0)
        w->proc = p;
    else if (made)
        mproc_process_destroy(p);
    if (nfds == 4)
        close(fds[3]); /* the worker has its own copy */
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

/* How a pool enforces its memory limit, as mproc_executor_info says. */
static const char *limit_how(mproc_memory_limit_kind k)
{
    switch (k) {
    case MPROC_MEMLIMIT_RLIMIT_AS: return "RLIMIT_AS";
    case MPROC_MEMLIMIT_CGROUP2: return "cgroup v2";
    case MPROC_MEMLIMIT_CGROUP1: return "cgroup v1";
    default: return "none";
    }
}

/* "task ran out of memory (worker limit 64 MiB, RLIMIT_AS)", then how
 * its worker ended if it did. */
static void oom_message(char *buf, size_t n, const struct ppool *pp, const char *how)
{
    bool mib = pp->mem_limit % (1u << 20) == 0;
    snprintf(buf, n, "task ran out of memory (worker limit %zu %s, %s)%s%.160s",
             pp->mem_limit >> (mib ? 20 : 10), mib ? "MiB" : "KiB", limit_how(pp->mem_how),
             how ? "; " : "", how ? how : "");
}

/* Did the kernel kill w's process for going past its cgroup's limit? */
static bool cgroup_oom_killed(const struct ppool *pp, const struct pworker *w)
{
    return by_cgroup(pp) && mproc__memcg_oom_kills(&pp->memcg, w->index) > w->cg_kills;
}

/* ---- collecting ------------------------------------------------------------ */

/* Hand f the len-byte result its task left in w's zone at logical
 * `start`: the future reads it there, and the zone keeps it until the
 * future lets go (the copy is only for when memory runs out). */
static void deliver_in_place(struct ppool *pp, struct pworker *w, mproc_future *f,
                             uint64_t start, size_t len)
{
    struct zone *z = w->zone;
    const unsigned char *res = zone_result(z, start, len);
    uint64_t end = start + page_up(len);
    if (!res) {
        bump(&pp->failed);
        mproc__future_resolve(f, -EPROTO, NULL, 0, "bad result position from worker");
    } else {
        bump(&pp->done); /* counted before anyone can see the outcome */
        bool kept = zone_keep(z, start, end);
        if (!kept || !mproc__future_resolve_shared(f, res, len, zone_drop, z, start)) {
            mproc__future_resolve(f, 0, res, len, NULL); /* out of memory: a copy */
            if (kept)
                zone_drop(z, start);
            else
                zone_pass(z, end);
        }
    }
    mproc_future_release(f); /* the scheduler's reference */
}

/* Hand the outcome of w's DONE slot at pos to its future. */
static void deliver(struct ppool *pp, struct pworker *w, unsigned pos)
{
    struct mailbox *mb = w->mb;
    struct slot *s = &mb->slots[pos];
    mproc_future *f = mproc__load_relaxed(&w->fut[pos]);
    uint32_t flags = s->flags;
    int code = s->code > 0 ? 0 : s->code;
    size_t rlen = (size_t)s->res_len, off = align64((size_t)s->arg_len);
    const unsigned char *res;
    size_t cap;
    if (code == 0 && (flags & SL_RES_ZONE)) {
        deliver_in_place(pp, w, f, mb->res_zone[pos], rlen);
        return;
    }
    if (flags & SL_RES_BIG) {
        res = w->big + ((flags & SL_ARG_BIG) ? off : 0);
        cap = BIG_SIZE - ((flags & SL_ARG_BIG) ? off : 0);
    } else {
        res = w->regions + (size_t)pos * SLOT_DATA + off;
        cap = off <= SLOT_DATA ? SLOT_DATA - off : 0;
    }
    const char *msg = NULL;
    if (code < 0 && (flags & SL_MSG)) {
        mb->message[pos][F_MESSAGE_MAX - 1] = '\0'; /* the worker is done with it */
        msg = mb->message[pos];
    }
    if (code < 0 && (flags & SL_OOM)) {
        char text[F_MESSAGE_MAX];
        oom_message(text, sizeof text, pp, msg);
        bump(&pp->failed);
        bump(&pp->out_of_memory);
        w->oom_retiring = true; /* it quits by itself; worker_died replaces it */
        mproc__future_resolve(f, MPROC_EMEMLIMIT, NULL, 0, text);
    } else if (code == 0 && rlen > cap) {
        bump(&pp->failed);
        mproc__future_resolve(f, -EPROTO, NULL, 0, "bad result length from worker");
    } else {
        bump(code == 0 ? &pp->done : &pp->failed);
        mproc__future_resolve(f, code, res, rlen, msg);
    }
    mproc_future_release(f); /* the scheduler's reference */
}

/* Pass w's finished slots in order: deliver DONE ones, skip withdrawn
 * ones. Returns how many it passed (dispatcher only). */
static unsigned collect(struct ppool *pp, struct pworker *w)
{
    unsigned n = 0;
    while (w->head != w->tail) {
        unsigned pos = (unsigned)(w->head % RING);
        struct slot *s = &w->mb->slots[pos];
        uint64_t st = mproc__load_acquire(&s->state);
        unsigned kind = ST_KIND(st);
        if (kind == S_DONE)
            deliver(pp, w, pos);
        else if (kind != S_WITHDRAWN)
            break;
        if (s->flags & (SL_ARG_BIG | SL_RES_BIG)) {
            uint32_t tag = big_tag(w->head);
            /* Release: our reads of the area come before its next use. */
            if (mproc__cas(&w->mb->big, &tag, 0, __ATOMIC_RELEASE) &&
                __atomic_load_n(&w->mb->big_wait, __ATOMIC_SEQ_CST))
                mproc__futex_wake(&w->mb->big, 1, true);
        }
        __atomic_store_n(&w->fut[pos], NULL, __ATOMIC_RELEASE);
        w->head++;
        n++;
    }
    return n;
}

/* ---- placing --------------------------------------------------------------- */

/* May w, whose ring is empty, start running tasks? Always without
 * MPROC_JOBSERVER; with it, once it holds a token. A pool that fails (a
 * read error) is not waited for: tasks then run without tokens rather
 * than never. */
static bool token_take(struct ppool *pp, struct pworker *w)
{
    if (!pp->jobserver || w->token)
        return true;
    int rc = mproc__jobserver_try_acquire();
    w->token = rc > 0;
    pp->token_wait |= rc == 0;
    return rc != 0;
}

/* w's ring is empty (its tasks are done or gone): its token goes back to
 * the pool. */
static void token_give(struct pworker *w)
{
    if (w->token) {
        w->token = false;
        mproc__jobserver_release();
    }
}

/* May w get another task (of `len` argument bytes)? */
static bool can_take(const struct ppool *pp, const struct pworker *w, size_t len)
{
    if (!w->proc || w->timed_out || w->cancel_killed || w->retiring || w->oom_retiring ||
        w->tail - w->head >= DEPTH || !mproc__load_acquire(&w->mb->ready))
        return false;
    if (pp->max_tasks && w->placed >= pp->max_tasks)
        return false;
    return len <= SLOT_DATA ||
           (w->head == w->tail && mproc__load_relaxed(&w->mb->big) == 0);
}

/* The bytes of f's argument as its worker gets it: a map chunk's
 * message (map.c) or the submitted bytes. */
static size_t arg_bytes(const mproc_future *f)
{
    return f->fn == mproc__map_remote_chunk ? mproc__map_pack_len(f) : f->arg_len;
}

/* Put claimed task f of `len` argument bytes into w's ring (can_take
 * said yes). */
static void place(struct ppool *pp, struct pworker *w, mproc_future *f, uint64_t fn, size_t len)
{
    struct mailbox *mb = w->mb;
    uint64_t idx = w->tail;
    unsigned pos = (unsigned)(idx % RING);
    struct slot *s = &mb->slots[pos];
    int64_t limit = mproc__future_timeout(f);
    if (limit == 0)
        limit = pp->task_timeout_ms;
    bool big = len > SLOT_DATA;
    unsigned char *dst = big ? w->big : w->regions + (size_t)pos * SLOT_DATA;
    if (f->fn == mproc__map_remote_chunk)
        mproc__map_pack(f, dst); /* straight into the worker's memory */
    else if (len > 0)
        memcpy(dst, f->arg, len);
    s->fn = fn;
    s->arg_len = len;
    s->res_len = 0;
    s->limit_ms = limit > 0 ? limit : 0;
    s->start_ns = 0;
    s->flags = big ? SL_ARG_BIG : 0;
    s->cancel = mproc__load_relaxed(&f->cancel_req) || mproc__load_relaxed(&pp->base.cancelling);
    s->code = 0;
    if (big)
        mproc__store_relaxed(&mb->big, big_tag(idx));
    __atomic_store_n(&w->fut[pos], f, __ATOMIC_RELEASE);
    /* Release: the task's fields before the worker (or a canceller) sees
     * QUEUED; seq_cst: see withdraw_all_cancelled. */
    __atomic_store_n(&s->state, ST(idx, S_QUEUED), __ATOMIC_SEQ_CST);
    w->tail++;
    w->woken = true;
    mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
    if (pp->max_tasks && ++w->placed >= pp->max_tasks) {
        /* Its last task: it quits once it has run it (worker_died then
         * starts a fresh one). */
        w->retiring = true;
        mproc__store_release(&mb->quit, 1);
    }
}

/* The next task to place, claimed, or NULL (dispatcher only). */
static mproc_future *next_task(struct ppool *pp)
{
    mproc_future *f;
    while ((f = pp->redo_head)) {
        list_pop(&pp->redo_head, &pp->redo_tail);
        if (pp->cancel_kill && mproc__load_relaxed(&f->cancel_req)) {
            drop_claimed(pp, f, false); /* its cancel returned 1 */
            continue;
        }
        return f;
    }
    while ((f = list_pop(&pp->mine_head, &pp->mine_tail))) {
        if (mproc__future_claim(f))
            return f;
        mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
        mproc_future_release(f); /* cancelled while pending */
    }
    return NULL;
}

/* Push f back to the front of the dispatcher's queue. */
static void unget_task(struct ppool *pp, mproc_future *f)
{
    f->u.next = pp->redo_head;
    pp->redo_head = f;
    if (!pp->redo_tail)
        pp->redo_tail = f;
}

/* Wake the workers that got tasks this round. */
static void wake_workers(struct ppool *pp)
{
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        struct pworker *w = &pp->w[i];
        if (!w->woken)
            continue;
        w->woken = false;
        /* seq_cst: Dekker with the worker's wsleep (see worker_wait). */
        __atomic_fetch_add(&w->mb->tailw, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&w->mb->wsleep, __ATOMIC_SEQ_CST))
            mproc__futex_wake(&w->mb->tailw, 1, true);
    }
}

/* The TAKEN slot at w's head, or 0 (index 0 is never used). */
static uint64_t running_slot(const struct pworker *w)
{
    if (w->head == w->tail)
        return 0;
    uint64_t st = mproc__load_acquire(&w->mb->slots[w->head % RING].state);
    return ST_KIND(st) == S_TAKEN ? w->head : 0;
}

/* An idle worker gets the older half of the tasks queued behind a running
 * one in the busiest ring: they are taken back to the front of `redo`;
 * returns that worker (holding a jobserver token if needed) and their
 * number in *moved, or NULL (dispatcher only). Only tasks behind a
 * running one: a worker that has not taken its first slot yet is just
 * waking up. The oldest ones: tasks start roughly in submission order. */
static struct pworker *rebalance(struct ppool *pp, unsigned *moved)
{
    unsigned n = pp->base.nworkers;
    struct pworker *idle = NULL, *busiest = NULL;
    for (unsigned i = 0; i < n && !idle; i++)
        if (pp->w[i].head == pp->w[i].tail && can_take(pp, &pp->w[i], 0))
            idle = &pp->w[i];
    if (!idle)
        return NULL;
    unsigned most = 0;
    uint64_t after = 0;
    for (unsigned i = 0; i < n; i++) {
        struct pworker *w = &pp->w[i];
        uint64_t run = running_slot(w);
        if (!run)
            continue;
        unsigned queued = 0;
        for (uint64_t idx = run + 1; idx != w->tail; idx++)
            queued += ST_KIND(mproc__load_relaxed(&w->mb->slots[idx % RING].state)) == S_QUEUED;
        if (queued > most) {
            most = queued;
            busiest = w;
            after = run;
        }
    }
    if (!busiest || !token_take(pp, idle))
        return NULL;
    if ((*moved = take_back(pp, busiest, after, (most + 1) / 2, true)) == 0) {
        token_give(idle);
        return NULL;
    }
    return idle;
}

/* The worker for a task of `len` argument bytes: an idle one first (the
 * task starts at once, and tasks start in the order they came), else the
 * next busy one with room in its ring, round robin; NULL if none. */
static struct pworker *pick(struct ppool *pp, size_t len)
{
    unsigned n = pp->base.nworkers;
    for (unsigned k = 0; k < n; k++) {
        struct pworker *c = &pp->w[(pp->rr + k) % n];
        if (c->head == c->tail && can_take(pp, c, len) && token_take(pp, c))
            return c;
    }
    for (unsigned k = 0; k < n; k++) {
        struct pworker *c = &pp->w[(pp->rr + k) % n];
        if (c->head != c->tail && can_take(pp, c, len))
            return c;
    }
    return NULL;
}

/* Place up to max queued tasks: into `to`, or where pick() says. Returns
 * how many (dispatcher only). */
static unsigned place_some(struct ppool *pp, struct pworker *to, unsigned max)
{
    unsigned placed = 0;
    while (placed < max) {
        mproc_future *f = next_task(pp);
        if (!f)
            break;
        if (mproc__load_relaxed(&pp->base.cancelling)) {
            drop_claimed(pp, f, false);
            continue;
        }
        /* A function a spawned worker cannot find fails the task here. */
        uint64_t fn;
        void *addr;
        char why[MPROC__FNREF_WHY];
        memcpy(&addr, &f->fn, sizeof addr);
        int rc = mproc__fnref_encode(addr, pp->base.fn_refs, &fn, why, sizeof why);
        if (rc != 0) {
            mproc__fetch_sub(&pp->pending_n, 1, __ATOMIC_RELAXED);
            bump(&pp->failed);
            mproc__future_resolve(f, rc, NULL, 0, why);
            mproc_future_release(f); /* the scheduler's reference */
            continue;
        }
        size_t len = arg_bytes(f);
        struct pworker *w = to ? (can_take(pp, to, len) ? to : NULL) : pick(pp, len);
        if (!w) {
            unget_task(pp, f);
            break;
        }
        pp->rr = (unsigned)(w - pp->w + 1) % pp->base.nworkers;
        pp->init_failures = 0; /* a worker started fine */
        place(pp, w, f, fn, len);
        placed++;
    }
    return placed;
}

/* Place what waits: first tasks queued behind running ones move to idle
 * workers (they have waited longest), then the queue's tasks. True if any
 * was placed (dispatcher only). */
static bool place_all(struct ppool *pp)
{
    pp->token_wait = false;
    take_pending(pp);
    unsigned any = 0, moved = 0;
    struct pworker *idle;
    for (unsigned k = 0; k < pp->base.nworkers && (idle = rebalance(pp, &moved)); k++)
        any += place_some(pp, idle, moved);
    any += place_some(pp, NULL, UINT32_MAX);
    /* shutdown(cancel_futures) came while we placed: what we placed must
     * not start (see withdraw_all_cancelled). */
    if (any && __atomic_load_n(&pp->base.cancelling, __ATOMIC_SEQ_CST))
        withdraw_all_cancelled(pp);
    wake_workers(pp);
    return any > 0;
}

/* ---- deaths, deadlines, cancels ------------------------------------------------ */

/* Stop w's TAKEN slot `idx`: take back what is queued behind it, then
 * signal the worker if the task is still running (dispatcher only). */
static void stop_task(struct ppool *pp, struct pworker *w, uint64_t idx, bool timeout,
                      int64_t limit)
{
    take_back(pp, w, idx, RING, false);
    uint64_t st = mproc__load_acquire(&w->mb->slots[idx % RING].state);
    if (st != ST(idx, S_TAKEN))
        return; /* it finished meanwhile: nothing to stop */
    w->victim = idx;
    w->victim_limit = limit;
    if (timeout) {
        w->timed_out = true;
        w->kill_at = mproc__now() + KILL_GRACE_NS;
        mproc_process_terminate(w->proc);
    } else {
        w->cancel_killed = true;
        w->kill_at = INT64_MAX;
        mproc_process_kill(w->proc);
    }
}

/* Pass cancel requests on to w's running task, stop it past its
 * deadline or (MPROC_CANCEL_KILL) when cancelled (dispatcher only). */
static void watch_running(struct ppool *pp, struct pworker *w, int64_t now)
{
    if (w->timed_out || w->cancel_killed) {
        if (now >= w->kill_at) {
            mproc_process_kill(w->proc);
            w->kill_at = INT64_MAX;
        }
        return;
    }
    uint64_t idx = running_slot(w);
    if (!idx)
        return;
    unsigned pos = (unsigned)(idx % RING);
    struct slot *s = &w->mb->slots[pos];
    mproc_future *f = mproc__load_relaxed(&w->fut[pos]);
    bool asked = mproc__load_relaxed(&f->cancel_req) != 0;
    if ((asked || mproc__load_relaxed(&pp->base.cancelling)) && !mproc__load_relaxed(&s->cancel))
        mproc__store_relaxed(&s->cancel, 1);
    if (asked && pp->cancel_kill) {
        stop_task(pp, w, idx, false, 0);
        return;
    }
    int64_t start = mproc__load_relaxed(&s->start_ns);
    if (s->limit_ms && start && now >= start + s->limit_ms * 1000000)
        stop_task(pp, w, idx, true, s->limit_ms);
}

/* Fail w's task that was running when its process ended. */
static void fail_running(struct ppool *pp, struct pworker *w, uint64_t idx, pid_t pid,
                         int exitcode)
{
    mproc_future *f = mproc__load_relaxed(&w->fut[idx % RING]);
    if (w->cancel_killed && idx == w->victim) {
        mproc__future_resolve_cancelled(f);
        mproc_future_release(f); /* the scheduler's reference */
        return;
    }
    char msg[F_MESSAGE_MAX];
    int code = MPROC_EWORKERDIED;
    char how[96];
    death_message(how, sizeof how, pid, exitcode);
    if (w->timed_out && idx == w->victim) {
        snprintf(msg, sizeof msg, "task ran past its %lld ms deadline; %s",
                 (long long)w->victim_limit, how);
        code = MPROC_ETASKTIMEOUT;
    } else if (mproc__load_acquire(&w->mb->oom) || cgroup_oom_killed(pp, w)) {
        oom_message(msg, sizeof msg, pp, how);
        code = MPROC_EMEMLIMIT;
        w->oom_retiring = true; /* counts the restart */
    } else {
        snprintf(msg, sizeof msg, "%s", how);
    }
    bump(&pp->failed); /* counted before anyone can see the outcome */
    bump(code == MPROC_ETASKTIMEOUT ? &pp->timed_out
         : code == MPROC_EMEMLIMIT  ? &pp->out_of_memory
                                    : &pp->worker_died);
    mproc__future_resolve(f, code, NULL, 0, msg);
    mproc_future_release(f); /* the scheduler's reference */
}

/* w's process has ended: deliver what it finished, fail what it was
 * running, queue again what it had not started, start a replacement. */
static void worker_died(struct ppool *pp, struct pworker *w)
{
    pid_t pid = mproc_process_pid(w->proc);
    int exitcode = 0;
    mproc_process_join(w->proc, -1);
    mproc_process_exitcode(w->proc, &exitcode);
    mproc_process_destroy(w->proc);
    w->proc = NULL;
    collect(pp, w);
    uint64_t running = running_slot(w);
    if (running)
        fail_running(pp, w, running, pid, exitcode);
    take_back(pp, w, running ? running : w->head - 1, RING, false);
    /* What is left was withdrawn by cancellers, or is the slot failed
     * above: pass it all. */
    for (; w->head != w->tail; w->head++)
        __atomic_store_n(&w->fut[w->head % RING], NULL, __ATOMIC_RELEASE);
    token_give(w);
    bool timed_out = w->timed_out, retired = w->retiring, oom = w->oom_retiring;
    w->retiring = false;
    w->oom_retiring = false;
    w->cancel_killed = false;
    w->timed_out = false;
    if (!mproc__load_acquire(&w->mb->ready)) { /* it never finished starting */
        char how[96];
        death_message(how, sizeof how, pid, exitcode);
        bool failed = mproc__load_acquire(&w->mb->init_failed);
        if (++pp->init_failures > INIT_RETRIES) {
            snprintf(pp->broken_why, sizeof pp->broken_why,
                     "the worker initializer %s %u times in a row (last: %s)",
                     failed ? "failed" : "crashed", pp->init_failures, how);
            size_t at = strlen(pp->broken_why);
            if (failed && w->mb->init_why[0]) /* it could not be found: why */
                snprintf(pp->broken_why + at, sizeof pp->broken_why - at, ": %.*s",
                         (int)sizeof w->mb->init_why - 1, w->mb->init_why);
            mproc__store_relaxed(&pp->base.broken, 1); /* Python's BrokenProcessPool */
            return;
        }
        w->restart_at = mproc__now() + ((int64_t)INIT_BACKOFF_NS << (pp->init_failures - 1));
        bump(&pp->r_init);
        return; /* the dispatcher starts it again when the back-off is over */
    }
    if (!mproc__load_relaxed(&pp->base.broken) &&
        (!__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) || !nothing_pending(pp))) {
        bump(timed_out ? &pp->r_timeout
             : oom     ? &pp->r_memory
             : retired ? &pp->r_recycled
                       : &pp->r_died);
        worker_start(pp, w); /* on failure, the next round tries again */
    }
}

/* Milliseconds until the nearest deadline, kill or restart, at most
 * POLL_MAX_MS (dispatcher only). */
static int poll_ms(const struct ppool *pp, int64_t now)
{
    int64_t next = now + (int64_t)POLL_MAX_MS * 1000000;
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        const struct pworker *w = &pp->w[i];
        int64_t t = 0;
        if (!w->proc) {
            if (w->restart_at > now)
                t = w->restart_at;
        } else if (w->timed_out || w->cancel_killed) {
            t = w->kill_at;
        } else if (w->head != w->tail) {
            const struct slot *s = &w->mb->slots[w->head % RING];
            uint64_t st = mproc__load_acquire(&s->state);
            int64_t start = mproc__load_relaxed(&s->start_ns);
            if (s->limit_ms && ST_KIND(st) == S_TAKEN)
                t = start ? start + s->limit_ms * 1000000 : now + 1000000;
            else if (s->limit_ms && ST_KIND(st) == S_QUEUED)
                t = now + s->limit_ms * 1000000; /* it starts later than now */
        }
        if (t != 0 && t < next)
            next = t;
    }
    return next <= now ? 0 : (int)((next - now + 999999) / 1000000);
}

static bool time_to_leave(struct ppool *pp)
{
    if (!__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) ||
        __atomic_load_n(&pp->base.inflight, __ATOMIC_SEQ_CST) != 0 || !nothing_pending(pp))
        return false;
    for (unsigned i = 0; i < pp->base.nworkers; i++)
        if (pp->w[i].head != pp->w[i].tail)
            return false;
    return true;
}

/* Anything to collect, or new submits? (dispatcher only, while spinning) */
static bool work_arrived(struct ppool *pp)
{
    if (__atomic_load_n(&pp->nsub, __ATOMIC_SEQ_CST) != pp->nsub_seen)
        return true;
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        struct pworker *w = &pp->w[i];
        if (w->head != w->tail &&
            ST_KIND(__atomic_load_n(&w->mb->slots[w->head % RING].state, __ATOMIC_SEQ_CST)) ==
                S_DONE)
            return true;
    }
    return false;
}

/* Look at every worker: ended processes, deadlines, cancels, restarts.
 * pfd[i + 1] tells which ended (dispatcher only). */
static void watch_workers(struct ppool *pp, const struct pollfd *pfd)
{
    int64_t now = mproc__now();
    for (unsigned i = 0; i < pp->base.nworkers; i++) {
        struct pworker *w = &pp->w[i];
        if (w->proc && pfd[i + 1].revents)
            worker_died(pp, w);
        else if (w->proc)
            watch_running(pp, w, now);
        else if (!mproc__load_relaxed(&pp->base.broken) &&
                 !__atomic_load_n(&pp->base.shutdown, __ATOMIC_SEQ_CST) && now >= w->restart_at)
            worker_start(pp, w);
    }
}

/* pfd[0]: the eventfd; pfd[i + 1]: worker i's end; pfd[n + 1]: the
 * jobserver's pool while tasks wait for a token (a token freed by this
 * process, not through the pool's pipe, is seen within POLL_MAX_MS). */
static void fill_pollfds(struct ppool *pp, struct pollfd *pfd)
{
    unsigned n = pp->base.nworkers;
    pfd[0] = (struct pollfd){ .fd = pp->evfd, .events = POLLIN };
    for (unsigned i = 0; i < n; i++)
        pfd[i + 1] = (struct pollfd){
            .fd = pp->w[i].proc ? mproc__process_wait_fd(pp->w[i].proc) : -1,
            .events = POLLIN };
    pfd[n + 1] = (struct pollfd){ .fd = pp->token_wait ? mproc__jobserver_fd() : -1,
                                  .events = POLLIN };
}

/* Sleep until woken (a worker's DONE, a submit, a poke, a process's end)
 * or the next deadline; false if something came in while getting ready
 * (dispatcher only). */
static bool dispatcher_sleep(struct ppool *pp, struct pollfd *pfd)
{
    unsigned n = pp->base.nworkers;
    __atomic_store_n(&pp->sleeping, 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < n; i++)
        if (pp->w[i].proc && pp->w[i].head != pp->w[i].tail)
            __atomic_store_n(&pp->w[i].mb->pwake, 1, __ATOMIC_SEQ_CST);
    bool slept = false;
    if (!work_arrived(pp)) {
        fill_pollfds(pp, pfd);
        int rc = poll(pfd, n + 2, poll_ms(pp, mproc__now()));
        slept = true;
        if (rc > 0 && pfd[0].revents) {
            uint64_t v;
            ssize_t r = read(pp->evfd, &v, sizeof v);
            (void)r;
        }
        if (rc < 0)
            for (unsigned i = 0; i <= n; i++)
                pfd[i].revents = 0;
    }
    mproc__store_relaxed(&pp->sleeping, 0);
    for (unsigned i = 0; i < n; i++)
        if (mproc__load_relaxed(&pp->w[i].mb->pwake))
            mproc__store_relaxed(&pp->w[i].mb->pwake, 0);
    return slept;
}

static void *dispatcher_main(void *arg)
{
    struct ppool *pp = arg;
    unsigned n = pp->base.nworkers;
    struct pollfd *pfd = calloc(n + 2, sizeof *pfd);
    if (!pfd) /* cannot watch: fail everything rather than hang */
        mproc__store_relaxed(&pp->base.broken, 1);
    int64_t last_watch = 0, idle_since = 0, spin_ns = DISPATCH_SPIN_NS;
    unsigned spins = 0;
    for (;;) {
        bool cancelling = mproc__load_relaxed(&pp->base.cancelling) != 0;
        bool broken = mproc__load_relaxed(&pp->base.broken) != 0;
        if (cancelling || broken) { /* broken: Python's BrokenProcessPool */
            drop_queued(pp, broken);
            if (cancelling)
                withdraw_all_cancelled(pp);
        }
        bool work = false;
        for (unsigned i = 0; i < n; i++) {
            struct pworker *w = &pp->w[i];
            work |= collect(pp, w) > 0;
            if (w->head == w->tail)
                token_give(w);
        }
        if (!broken)
            work |= place_all(pp);
        int64_t now = mproc__now();
        if (now - last_watch >= BUSY_POLL_NS && pfd) {
            fill_pollfds(pp, pfd);
            if (poll(pfd, n + 2, 0) < 0)
                for (unsigned i = 0; i <= n; i++)
                    pfd[i].revents = 0;
            watch_workers(pp, pfd);
            last_watch = now;
            continue; /* deaths may have queued tasks again */
        }
        if (time_to_leave(pp) || !pfd)
            break;
        if (work) {
            idle_since = 0;
            continue;
        }
        if (idle_since == 0)
            idle_since = now;
        if (now - idle_since < spin_ns) { /* work is likely to come soon */
            if (++spins % 8 == 0)
                sched_yield(); /* a worker we wait for may share our CPU */
            else
                mproc__cpu_relax();
            continue;
        }
        int64_t t0 = mproc__now();
        if (dispatcher_sleep(pp, pfd)) {
            watch_workers(pp, pfd);
            last_watch = mproc__now();
            /* Spin next time only if sleeping did not last long. */
            spin_ns = last_watch - t0 < 4 * DISPATCH_SPIN_NS ? DISPATCH_SPIN_NS : 0;
        }
        idle_since = 0;
    }
    /* Nothing left to run: let every worker go. */
    if (mproc__load_relaxed(&pp->base.broken))
        drop_queued(pp, true);
    for (unsigned i = 0; i < n; i++) {
        struct pworker *w = &pp->w[i];
        if (!w->proc)
            continue;
        mproc__store_release(&w->mb->quit, 1);
        __atomic_fetch_add(&w->mb->tailw, 1, __ATOMIC_SEQ_CST);
        mproc__futex_wake(&w->mb->tailw, 1, true);
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
    mproc__fetch_add(&pp->pending_n, 1, __ATOMIC_RELAXED); /* before it can be taken */
    mproc__mutex_lock(&pp->qlock);
    list_push(&pp->head, &pp->tail, f);
    mproc__mutex_unlock(&pp->qlock);
    /* seq_cst: Dekker with the dispatcher's `sleeping` (see the top). */
    __atomic_fetch_add(&pp->nsub, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&pp->sleeping, __ATOMIC_SEQ_CST) &&
        __atomic_exchange_n(&pp->sleeping, 0, __ATOMIC_SEQ_CST))
        poke(pp);
}

static bool procs_cancel_running(mproc_executor *ex, mproc_future *f)
{
    struct ppool *pp = ppool_of(ex);
    if (withdraw_future(pp, f)) { /* queued in a ring, not started: ours to end */
        poke(pp);                 /* the dispatcher passes the slot */
        mproc__future_resolve_cancelled(f);
        mproc_future_release(f); /* the scheduler's reference */
        return true;
    }
    poke(pp); /* running: the dispatcher passes it on */
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
    if (mproc__load_relaxed(&ex->cancelling)) {
        /* Again, seq_cst: see withdraw_all_cancelled. */
        __atomic_store_n(&ex->cancelling, 1, __ATOMIC_SEQ_CST);
        cancel_shared_pending(pp);
        withdraw_all_cancelled(pp);
    }
    poke(pp);
    if (wait && pp->dispatcher_started) {
        pthread_join(pp->dispatcher, NULL);
        pp->dispatcher_started = false;
    }
}

static void free_ppool(struct ppool *pp)
{
    for (unsigned i = 0; pp->w && i < pp->base.nworkers; i++)
        zone_release(pp->w[i].zone); /* held results keep theirs */
    mproc__memcg_close(&pp->memcg, pp->base.nworkers); /* the workers have ended */
    free(pp->w);
    mproc__pheap_release(pp->heap); /* results may keep it a while */
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
    pp->memcg.dirfd = -1;
    pp->cancel_kill = (opts->flags & MPROC_CANCEL_KILL) != 0;
    pp->jobserver = (opts->flags & MPROC_JOBSERVER) != 0;
    pp->qlock = MPROC__MUTEX_INIT;
    pp->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = pp->evfd >= 0 ? 0 : -errno;
    if (rc == 0 && pp->mem_limit) {
        int via = opts->memory_limit_via;
        pp->mem_how = MPROC_MEMLIMIT_RLIMIT_AS;
        if (via != MPROC_MEMLIMIT_RLIMIT_AS) {
            rc = mproc__memcg_open(&pp->memcg, via, pp->mem_limit);
            if (rc == 0)
                pp->mem_how = pp->memcg.kind;
            else if (via == MPROC_MEMLIMIT_AUTO)
                rc = 0; /* RLIMIT_AS, then */
        }
    }
    if (rc == 0 && pp->jobserver) /* before the fork server copies the environment */
        rc = mproc__jobserver_init();
    if (rc == 0)
        rc = mproc__pheap_create(&pp->heap, HEAP_SIZE);
    if (rc == 0 && pp->start == MPROC_START_FORKSERVER)
        rc = mproc_forkserver_start();
    if (rc == 0) {
        pp->w = calloc(opts->workers, sizeof *pp->w);
        rc = pp->w ? 0 : -ENOMEM;
    }
    for (unsigned i = 0; rc == 0 && i < opts->workers; i++) {
        pp->w[i].pp = pp;
        pp->w[i].index = (int)i;
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
    /* Queued: pending, plus placed in a ring and not taken yet. */
    uint64_t queued = mproc__load_relaxed(&pp->pending_n);
    for (unsigned i = 0; i < pp->base.nworkers; i++)
        for (unsigned pos = 0; pos < RING; pos++)
            queued += ST_KIND(mproc__load_relaxed(&pp->w[i].mb->slots[pos].state)) == S_QUEUED;
    out->queued = queued;
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

static struct mproc__pheap *procs_heap(mproc_executor *ex)
{
    return ppool_of(ex)->heap;
}

static void procs_info(const mproc_executor *ex, mproc_executor_details *out)
{
    const struct ppool *pp = (const struct ppool *)ex;
    out->start = pp->start;
    out->worker_memory_limit = pp->mem_limit;
    out->jobserver = pp->jobserver;
    if (pp->mem_limit) {
        out->memory_limit = pp->mem_how;
        out->memory_limit_how = limit_how(pp->mem_how);
    }
}

const struct mproc__backend mproc__process_backend = {
    .kind = MPROC_PROCESSES,
    .stats = procs_stats,
    .info = procs_info,
    .heap = procs_heap,
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
