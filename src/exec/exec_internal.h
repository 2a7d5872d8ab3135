/*
 * exec/exec_internal.h -- futures and executors, shared by the exec
 * layer's files (internal).
 *
 * A future is created by submit with two references (the caller's and the
 * scheduler's; one if the caller asked for none). The scheduler's
 * reference is dropped after the task ran (or was cancelled) and its
 * callbacks returned, so callbacks may release the caller's reference.
 *
 * State machine (`state`, the futex word result waiters sleep on):
 *     PENDING --worker CAS--> RUNNING --task returns--> DONE
 *        \--cancel CAS / shutdown(cancel) / broken--> CANCELLED or DONE
 * Everything a reader needs (code, result, message) is written before the
 * seq_cst store or CAS that makes the state final, and read after an
 * acquire load that sees it.
 *
 * Executor backends (below): the future, wait and map code talks to an
 * executor only through executor.c, never to a backend directly, so a
 * process backend reuses all of it.
 */
#ifndef MPROC_EXEC_INTERNAL_H
#define MPROC_EXEC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdint.h>

#include "exec/queue.h"
#include "workers/ctx.h"
#include "os/sys.h"
#include "mproc/exec.h"

enum { F_PENDING, F_RUNNING, F_DONE, F_CANCELLED };

#define F_INLINE_RESULT 24 /* results up to this size live in the future */
#define F_MESSAGE_MAX 256

struct mproc__cb {
    mproc_future_cb fn;
    void *userdata;
};

/* Someone waiting on several futures (mproc_wait, as_completed): told of
 * each completion under the future's lock, so once it has unregistered
 * (taking that lock) no notification is still running. */
struct mproc__waiter {
    void (*notify)(struct mproc__waiter *w, mproc_future *f);
    struct mproc__waiter *next, *prev; /* in one future's list */
};

/* Gives back a result that a future borrowed (mproc__future_resolve_shared). */
typedef void (*mproc__result_drop)(void *owner, uint64_t cookie);

/* What few futures need: a failure message, more than one callback. */
struct mproc__future_rare {
    char *message;             /* from mproc_fail, or NULL */
    struct mproc__cb *cb_more; /* callbacks after the first, cb_cap slots */
    unsigned cb_cap;
    int64_t timeout_ms;        /* the task's own deadline (submit opts), 0: none given */
    /* A result that lives in memory someone else owns (u.heap points
     * there): drop(owner, cookie) hands it back when the future lets go. */
    mproc__result_drop drop;
    void *drop_owner;
    uint64_t drop_cookie;
};

/* Two cache lines (checked below); freed ones are recycled (pool.c). */
struct mproc_future {
    uint32_t state;      /* F_*: futex word */
    uint32_t sleepers;   /* result() callers about to sleep on `state` */
    uint32_t refs;
    uint32_t cancel_req; /* mproc_cancel_requested for this task */
    uint32_t lock;       /* sync/mutex.h; guards finished, callbacks, waiters, rare */
    int code;            /* the task's return value when DONE */
    unsigned ncb;        /* callbacks registered: cb_first, then rare->cb_more */
    bool finished;       /* callbacks and waiters have been told */
    bool owns_arg;       /* arg is our copy (MPROC_COPY_ARG) */
    mproc_task_fn fn;
    const void *arg;
    size_t arg_len;
    mproc_executor *ex;  /* compared, never dereferenced, once done */
    size_t len;          /* result length */
    struct mproc__cb cb_first;
    struct mproc__waiter *waiters;
    struct mproc__future_rare *rare; /* NULL until needed */
    union {
        mproc_future *next; /* overflow queue link, while PENDING */
        void *heap;         /* the result, when len > F_INLINE_RESULT */
        unsigned char inline_result[F_INLINE_RESULT];
    } u;
};

_Static_assert(sizeof(struct mproc_future) == 128, "a future is two cache lines");

/* pool.c: memory for futures, kept for reuse (any thread may recycle
 * a block another allocated). */
void *mproc__future_alloc(void);
void mproc__future_recycle(void *p);

/* future.c */
mproc_future *mproc__future_new(mproc_executor *ex, mproc_task_fn fn, const void *arg,
                                size_t len, bool copy, unsigned refs);
/* Run the task of a PENDING future on the calling worker (or finish it
 * as failed with `fail_code` if non-zero, without running it). */
int mproc__future_run(mproc_future *f, int worker, int fail_code);
/* Give a new future its own deadline (mproc_submit_opts.timeout_ms, not
 * 0); -ENOMEM. Read it with mproc__future_timeout (0: none given). */
int mproc__future_set_timeout(mproc_future *f, int64_t timeout_ms);
int64_t mproc__future_timeout(const mproc_future *f);
/* Move a PENDING future to RUNNING for a backend that runs it elsewhere;
 * false if it was cancelled meanwhile (then drop it). */
bool mproc__future_claim(mproc_future *f);
/* Finish a claimed future with what its task produced elsewhere: the
 * code, the result bytes (copied; used when code is 0) and a failure
 * message (may be NULL or ""). */
void mproc__future_resolve(mproc_future *f, int code, const void *data, size_t len,
                           const char *message);
/* Finish a claimed future successfully with a result of len bytes at
 * data that it does not copy: data stays valid until drop(owner,
 * cookie), which the future calls once when it is freed. len must exceed
 * F_INLINE_RESULT. False (f untouched, drop not called) when out of
 * memory: then resolve with a copy. */
bool mproc__future_resolve_shared(mproc_future *f, const void *data, size_t len,
                                  mproc__result_drop drop, void *owner, uint64_t cookie);
/* End a claimed (RUNNING) future as cancelled: its task was stopped. */
void mproc__future_resolve_cancelled(mproc_future *f);
/* Cancel a PENDING future from the scheduler side; true if it was. */
bool mproc__future_cancel_pending(mproc_future *f);
/* Register/unregister a waiter; returns true if already finished (then
 * the waiter was not registered). */
bool mproc__future_watch(mproc_future *f, struct mproc__waiter *w);
void mproc__future_unwatch(mproc_future *f, struct mproc__waiter *w);
/* A future that is not a task: created RUNNING (so it cannot be
 * cancelled) and finished by mproc__future_complete. */
mproc_future *mproc__future_manual(mproc_executor *ex, unsigned refs);
void mproc__future_complete(mproc_future *f, int code);


/* Final state: F_DONE with code, or F_CANCELLED. */
static inline bool mproc__future_final(uint32_t state)
{
    return state >= F_DONE;
}

/* ---- executors and their backends ------------------------------------ */

/*
 * A backend is where an executor's tasks run. executor.c does what every
 * kind shares -- checking arguments, the shutdown and broken states, the
 * count of submits in flight, the list of live executors shut down at
 * exit, creating futures -- and calls the backend to queue and run them.
 * The thread backend is threads.c; a backend's executor embeds struct
 * mproc_executor as its first member.
 */
struct mproc__backend {
    mproc_executor_kind kind;
    /* The longest task argument it takes (submit fails with -E2BIG). */
    size_t max_arg;
    /* It can stop a task past its deadline (task_timeout_ms). */
    bool deadlines;
    /* Tasks run in another address space: only their argument bytes
     * travel (map sends chunks as messages). */
    bool remote;
    /* Allocate an executor for opts (opts->workers already resolved, not
     * 0) with its common part zeroed, and start its workers. Returns 0 or
     * a negative code with nothing left behind. */
    int (*create)(const mproc_executor_opts *opts, mproc_executor **out);
    /* Queue PENDING future f, passing the scheduler's reference. Never
     * fails: a backend keeps an unbounded overflow. */
    void (*enqueue)(mproc_executor *ex, mproc_future *f);
    /* Called on one of ex's workers (mproc__exec_worker == ex): run one
     * queued task and return true, or false if there was none. */
    bool (*help)(mproc_executor *ex);
    /* `shutdown` is set: cancel every queued task if ex->cancelling,
     * wake idle workers, and if wait, return once every worker is done. */
    void (*shutdown)(mproc_executor *ex, bool wait);
    /* Free an executor whose workers are gone. */
    void (*destroy)(mproc_executor *ex);
    /* A running task's future f was asked to cancel (cancel_req is set):
     * return true if the backend will stop it (the future then ends
     * cancelled). NULL: the task may only poll mproc_cancel_requested. */
    bool (*cancel_running)(mproc_executor *ex, mproc_future *f);
    /* Fill what it counts (out is zeroed; workers is set). */
    void (*stats)(const mproc_executor *ex, mproc_executor_counters *out);
    /* Remote backends: the memory its workers share with us (pheap.c),
     * not retained, or NULL. NULL op: none. */
    struct mproc__pheap *(*heap)(mproc_executor *ex);
    /* Fill the start method and memory limit (out has the common part;
     * NULL: none of these apply). */
    void (*info)(const mproc_executor *ex, mproc_executor_details *out);
};

/* ---- a process pool's shared heap (pheap.c) ------------------------------ */

/*
 * One memfd mapped by a pool's process and by every worker (they get the
 * descriptor at start), for map's items and dense results. The parent
 * allocates (page-granular; thread-safe) and names ranges to workers by
 * offset. Freed ranges keep their pages up to a bound, for the next map.
 */
struct mproc__pheap;
/* A heap of `size` bytes (sparse), one reference: 0 or -errno. */
int mproc__pheap_create(struct mproc__pheap **out, size_t size);
int mproc__pheap_fd(const struct mproc__pheap *h);
struct mproc__pheap *mproc__pheap_retain(struct mproc__pheap *h);
/* Drop a reference; the last one unmaps it. NULL: no-op. */
void mproc__pheap_release(struct mproc__pheap *h);
/* `bytes` of it (contents undefined) and their offset, or NULL when it
 * has no free range that large. */
void *mproc__pheap_alloc(struct mproc__pheap *h, size_t bytes, uint64_t *off);
/* Give back what mproc__pheap_alloc returned for `bytes`. */
void mproc__pheap_free(struct mproc__pheap *h, void *p, size_t bytes);
/* In a worker process: map the heap given at start (0 or -errno); then
 * its base and size (NULL and 0 if not mapped). */
int mproc__pheap_worker_attach(int fd);
unsigned char *mproc__pheap_worker_base(size_t *size);

/* ---- map chunks that run in another process (map.c) --------------------- */

/*
 * A remote backend's map chunk is a future whose fn is
 * mproc__map_remote_chunk, arg the results object and arg_len the chunk's
 * number. The backend does not copy arg: it writes the chunk's message
 * (mproc__map_pack_len(f) bytes) with mproc__map_pack, straight into the
 * worker's memory, and runs mproc__map_remote_chunk on it there.
 */
int mproc__map_remote_chunk(const void *msg, size_t len, mproc_ctx *ctx);
size_t mproc__map_pack_len(const mproc_future *f);
void mproc__map_pack(const mproc_future *f, void *dst);

extern const struct mproc__backend mproc__thread_backend;
extern const struct mproc__backend mproc__process_backend;

/* The executor the calling thread is a worker of, or NULL: set by the
 * backend on its worker threads. Futures and results may outlive their
 * executor, so code holding a possibly dead executor pointer compares it
 * with this and dereferences it only when equal. */
extern _Thread_local mproc_executor *mproc__exec_worker MPROC__TLS_IE;

/* The part of every executor that executor.c manages. Read-mostly fields
 * first; `inflight`, written by every submit, on its own cache line. */
struct mproc_executor {
    const struct mproc__backend *be;
    unsigned nworkers;
    uint32_t shutdown;   /* seq_cst: no new submits */
    uint32_t cancelling; /* shutdown with cancel_futures */
    uint32_t broken;     /* an initializer failed: tasks fail */
    int (*initializer)(void *);
    void *initarg;       /* the caller's pointer, or our copy of initarg_len bytes */
    size_t initarg_len;
    bool fn_refs;        /* workers are spawned: functions travel as workers/fnref.h references */
    char name[32];
    mproc_executor *reg_prev, *reg_next; /* live executors, for exit */
    /* Submits between their shutdown check and their enqueue: a worker
     * may leave only when shutdown is set and this is 0 (both seq_cst). */
    _Alignas(64) uint32_t inflight;
};

/* executor.c */
/* If the calling thread is a worker of ex, run one queued task and
 * return true; false if it is not a worker of ex or found nothing. */
bool mproc__exec_help(mproc_executor *ex);
/* True if the calling thread is a worker of ex (compared, not dereferenced). */
bool mproc__exec_on_worker(const mproc_executor *ex);
/*
 * Wait until ready(obj, arg) or the deadline: 0 or -ETIMEDOUT. `word`
 * is a futex word that changes whenever readiness may have changed, and
 * `sleepers` its partner: the side making things ready changes `word`
 * (seq_cst) and then wakes the word's sleepers if `sleepers` is non-zero.
 * A worker of ex runs queued tasks meanwhile and looks for new ones
 * every millisecond.
 */
int mproc__exec_await(mproc_executor *ex, uint32_t *word, uint32_t *sleepers,
                      bool (*ready)(const void *obj, size_t arg), const void *obj,
                      size_t arg, int64_t deadline);
/* mproc_submit for the exec layer's own tasks: len is passed to the task
 * as is and not checked against the backend's max_arg (map's chunks pass
 * their number there). */
int mproc__submit_internal(mproc_executor *ex, mproc_task_fn fn, const void *arg, size_t len,
                           mproc_future **out);
/* Was ex shut down with cancel_futures? */
bool mproc__exec_cancelling(const mproc_executor *ex);
/* For a backend's create: `size` zeroed bytes, 64-byte aligned, whose
 * leading struct mproc_executor is filled from opts (be, nworkers,
 * initializer, initarg, name; with initarg_len, initarg points to a copy
 * of the bytes in the same block, after the `size` bytes); NULL when out
 * of memory. Freed with free(). */
void *mproc__exec_alloc(size_t size, const struct mproc__backend *be,
                        const mproc_executor_opts *opts);
/* Run a task a backend dequeued, on its worker `worker`, and drop the
 * scheduler's reference (fails it with MPROC_EBROKEN if ex is broken).
 * Returns the task's code, or 1 if it had been cancelled (not run). */
int mproc__exec_run(mproc_executor *ex, mproc_future *f, int worker);

#endif /* MPROC_EXEC_INTERNAL_H */
