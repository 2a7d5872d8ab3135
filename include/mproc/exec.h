/*
 * mproc/exec.h -- executors and futures (Python's concurrent.futures).
 *
 * An executor runs tasks on a pool of workers and hands back a future
 * for each. A task is
 *
 *     int fn(const void *arg, size_t len, mproc_ctx *ctx);
 *
 * It returns 0, or a negative code that becomes the future's error
 * (Python's exception); mproc_fail attaches a message. Its result is a
 * byte string: mproc_return(ctx, data, len) copies one into the future,
 * mproc_result_buffer(ctx, len) lets the task write it in place (the
 * task type and these calls are in workers.h: a process runs the same
 * tasks). The same task runs unchanged on every kind of executor.
 *
 * Thread executors (MPROC_THREADS): each worker owns a deque of tasks
 * (work stealing between workers); tasks submitted from outside the pool
 * go through a shared lock-free injection queue. A task that waits for a
 * future of its own executor runs other queued tasks meanwhile, so
 * recursive task trees cannot deadlock, even with one worker. Idle
 * workers spin briefly, then sleep on a futex.
 *
 * Process executors (MPROC_PROCESSES): each worker is a process with a
 * ring of task slots in shared memory; a dispatcher thread in the
 * caller's process places up to 32 tasks in each ring (the worker runs
 * them one after the other; an idle worker takes over tasks queued behind
 * a busy one) and completes their futures. A task waiting in a ring has
 * not started (mproc_future_cancel cancels it) but already counts as
 * running for mproc_future_running, as in Python's ProcessPoolExecutor.
 * A task's argument is copied into the ring (up to 32 MiB). A result of
 * 4 KiB or more is written by the worker into memory the caller's
 * process maps too, and mproc_future_result points at it there: no copy
 * back (the memory returns to the worker when the future is released; up
 * to 256 MiB of results per worker can be held this way, more are
 * copied). Smaller results are copied into the future. A result may be up
 * to 256 MiB. The task must be in the program
 * image the workers run (fork/forkserver: a function of the program or of
 * a library loaded before the executor started; spawn: of the program or
 * of a library it was linked with, see opts.start). A worker that dies while
 * running a task (signal, exit) fails that task's future only, with
 * MPROC_EWORKERDIED and a message naming the worker's pid and the signal
 * or exit status; the worker is replaced and the executor keeps serving.
 * map/imap copy the items into memory the workers share, and with a
 * result_size the workers write each result in place there, so no result
 * is copied back (without room there, each chunk's items and results
 * travel as messages). A worker that dies during a chunk fails that
 * chunk's items, which then read as zeros. Waiting threads of the caller never run
 * tasks themselves (help-while-wait is for thread executors).
 *
 * At normal exit (return from main, exit()), executors not yet destroyed
 * are shut down and their accepted tasks run to the end first, as
 * Python's concurrent.futures does at interpreter exit.
 *
 * Ownership: every future returned to the caller holds one reference,
 * dropped with mproc_future_release; the executor keeps its own until the
 * task has finished and its callbacks have run, so a future may be
 * released at any time, even before it is done.
 */
#ifndef MPROC_EXEC_H
#define MPROC_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "workers.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_executor mproc_executor;
typedef struct mproc_future mproc_future;

/* Called on a future when it completes (or is cancelled). */
typedef void (*mproc_future_cb)(mproc_future *f, void *userdata);

typedef enum mproc_executor_kind {
    MPROC_THREADS = 0,   /* worker threads in this process */
    MPROC_PROCESSES = 1, /* worker processes (see "Process executors" above) */
} mproc_executor_kind;

/* Options for mproc_executor_create. Zero is the default for every field;
 * more fields may be added at the end. */
typedef struct mproc_executor_opts {
    mproc_executor_kind kind;
    unsigned workers;    /* 0: the CPUs in this process's affinity mask */
    /* Run once on each worker before it takes tasks (Python's
     * initializer). A negative return breaks the executor: pending and
     * later tasks fail with MPROC_EBROKEN. */
    int (*initializer)(void *initarg);
    /* What the initializer gets. With initarg_len 0 the pointer itself
     * (and, in a forkserver worker, it points into the program as it was
     * when the server started). See initarg_len for a copy. */
    void *initarg;
    const char *name;    /* workers are named "<name>-<i>"; default "mproc" */
    /* MPROC_PROCESSES: how workers start (workers.h explains the
     * methods). MPROC_START_DEFAULT is MPROC_START_FORKSERVER here (safe
     * in threaded programs). MPROC_START_SPAWN runs each worker as a
     * fresh start of the program (/proc/self/exe): nothing of the
     * caller's memory reaches it, only task and initializer arguments
     * (give initarg_len), and it works whatever the caller's state --
     * threads, locks held, a large heap -- since nothing is copied.
     * Task and initializer functions may be any function of the program
     * or of a library it was linked with, static ones too, without
     * -rdynamic. One in a library loaded with dlopen (which a spawned
     * worker has not loaded) fails with MPROC_ENOSYMBOL and a message
     * naming the library: its future, or create or map, or -- for an
     * initializer the workers find missing -- the executor breaks with
     * that message. Spawn costs an exec and the program's start-up
     * per worker (a few milliseconds, more under sanitizers, against a
     * fraction of one for forkserver) at create and at every
     * replacement; tasks cost the same afterwards. Pick it when the
     * worker must not inherit anything (Python's default on macOS and
     * Windows), or when forking the caller or a fork server is unsafe.
     * A spawned worker runs before main(), from a constructor of
     * mproc's: its initializer, not main(), sets up what tasks need. */
    mproc_start_method start;
    /* MPROC_PROCESSES: a task still running this long after it started
     * is stopped -- its worker gets SIGTERM, then SIGKILL 200 ms later --
     * and its future fails with MPROC_ETASKTIMEOUT; the worker is
     * replaced. (A chunk of a map starts when its worker takes it, which
     * may be while the caller is still copying the map's items to memory
     * the workers share.) 0: no limit. Thread executors cannot stop a
     * task and reject a non-zero value (-EINVAL). */
    int64_t task_timeout_ms;
    /* MPROC_PROCESSES: a worker that has run this many tasks is replaced
     * by a fresh process (Python's max_tasks_per_child); the others keep
     * serving meanwhile. 0: no limit. Thread executors: -EINVAL. */
    unsigned max_tasks_per_child;
    unsigned flags;      /* MPROC_CANCEL_KILL, MPROC_JOBSERVER */
    /* MPROC_PROCESSES: how many bytes a worker's tasks may use beyond
     * what the worker had when it started (its initializer's allocations
     * count against it). 0: no limit. A task that goes past it fails with
     * MPROC_EMEMLIMIT and its worker is replaced. How it is enforced
     * (memory_limit_via; mproc_executor_info tells which is in use):
     *   - a memory cgroup per worker (cgroup v2 where the caller's cgroup
     *     may hand the memory controller down, else cgroup v1's memory
     *     hierarchy where this process may make cgroups -- as root,
     *     usually): resident memory counts, including pages of shared
     *     memory the worker touches first, such as the results it writes
     *     in place. Past the limit the kernel kills the worker (SIGKILL);
     *     the cgroup's count of such kills tells it from a kill from
     *     outside. The cgroups are made next to the caller's
     *     (mproc-<pid>-<pool>-<worker>) and removed by destroy, or by the
     *     next executor made there if the process was killed.
     *   - RLIMIT_AS in each worker: address space, not resident memory,
     *     so reserved but untouched mappings count too. A task past it is
     *     one that returns -ENOMEM, or whose worker dies by a signal right
     *     after an allocation failed (writing through the NULL that
     *     malloc returned, or abort()).
     * Thread executors cannot limit a task and reject a non-zero value
     * (-EINVAL). */
    size_t worker_memory_limit;
    /* How to enforce worker_memory_limit: MPROC_MEMLIMIT_AUTO (0) picks
     * cgroup v2, then cgroup v1, then RLIMIT_AS, the first that this
     * process may use; MPROC_MEMLIMIT_CGROUP2, _CGROUP1 or _RLIMIT_AS ask
     * for one, and create fails if it cannot be used (-ENOTSUP: no such
     * hierarchy or no memory controller in it; -EACCES, -EPERM, -EROFS:
     * not allowed to make cgroups; -EBUSY: cgroup v2, the caller's cgroup
     * holds processes and cannot hand the controller down). */
    int memory_limit_via;
    /* Non-zero: initarg[0..initarg_len) is copied at create (the caller
     * may free it when create returns), and the initializer gets a
     * pointer to a copy: its own copy in each worker process, one copy
     * shared by all threads of a thread executor (kept until destroy).
     * Required with MPROC_START_SPAWN when initarg is not NULL: a pointer
     * means nothing in a spawned worker (-EINVAL otherwise). */
    size_t initarg_len;
} mproc_executor_opts;

/* mproc_executor_opts.flags: on a process executor, mproc_future_cancel
 * of a running task kills its worker (which is replaced) and the future
 * ends cancelled. Thread executors: -EINVAL. */
#define MPROC_CANCEL_KILL 0x1u

/*
 * mproc_executor_opts.flags: share one CPU budget with the program's
 * other processes and with `make -j`, through the GNU make jobserver
 * protocol. A process executor then runs a task only while it holds a
 * token of the shared pool: one per busy worker, the first being the
 * process's own implicit token (the caller's thread is taken to wait
 * meanwhile), each given back as soon as its task ends however it ends
 * (result, crash, deadline, cancel, recycling, shutdown). With no token
 * free, tasks stay pending; they start when another process (or make)
 * frees one.
 *
 * The pool is the jobserver named in MAKEFLAGS (--jobserver-auth=R,W
 * with descriptors inherited from make and open when the library was
 * loaded, --jobserver-auth=fifo:PATH of make 4.4, or the old
 * --jobserver-fds=R,W; the last such option counts); without a usable
 * one, the first such executor of the program makes a pool of
 * mproc_cpu_count() tokens and puts it in MAKEFLAGS
 * ("-jN --jobserver-auth=fifo:/proc/<pid>/fd/<fd>", with
 * MPROC_JOBSERVER_ID beside it), so processes started later in any way
 * -- fork, forkserver, spawn, exec, nested executors, make 4.4 -- share
 * it. That first mproc_executor_create calls setenv(): make it while no
 * other thread reads the environment. Descendants that look for the
 * pool after its creator has ended cannot open it and make their own.
 * A process that dies holding tokens takes them with it (as with make).
 * A make older than 4.4 does not understand the fifo form: do not pass
 * that MAKEFLAGS to one. A fork server started before the pool was made
 * (by an executor without the flag) keeps the old environment: nested
 * executors in the workers it starts make pools of their own.
 * Thread executors: -EINVAL (their tasks run in the caller's process,
 * which has one token).
 */
#define MPROC_JOBSERVER 0x2u

/*
 * mproc_executor_create - start an executor and its workers.
 * Errors: -EINVAL (NULL out, unknown kind, workers > 4096 -- 1024 for
 * processes --, an unknown flag, a process-only flag on threads, initarg
 * NULL with initarg_len > 0, MPROC_START_SPAWN with initarg but no
 * initarg_len), MPROC_ENOSYMBOL (spawn: the initializer is in no object a
 * spawned worker loads), -ENOMEM, -EAGAIN (the system refused a thread or
 * a process; nothing is left running), -EMFILE (MPROC_JOBSERVER could not
 * make its pool).
 */
MPROC_API int mproc_executor_create(mproc_executor **out,
                                    const mproc_executor_opts *opts);

/*
 * mproc_executor_shutdown - stop accepting tasks (later submits fail with
 * MPROC_ESHUTDOWN). With cancel_futures, tasks not yet started are
 * cancelled (their futures report MPROC_ECANCELLED and run their
 * callbacks); otherwise every accepted task still runs. Running tasks
 * always run to the end (mproc_cancel_requested turns true for them when
 * cancel_futures is set). With wait, returns once every worker has
 * exited. Calling it again is harmless (a later call may add
 * cancel_futures or wait). Must not be called from one of the executor's
 * own tasks with wait = true (-EDEADLK). Errors: -EINVAL, -EDEADLK.
 */
MPROC_API int mproc_executor_shutdown(mproc_executor *ex, bool wait,
                                      bool cancel_futures);

/*
 * mproc_executor_destroy - shut down (waiting, without cancelling) and
 * free the executor. Futures the caller still holds stay valid until
 * released. NULL is a no-op. Must not be called from one of its tasks.
 */
MPROC_API void mproc_executor_destroy(mproc_executor *ex);

/* mproc_executor_workers - the number of workers, or -EINVAL. */
MPROC_API int mproc_executor_workers(const mproc_executor *ex);

/* How an executor limits its workers' memory (mproc_executor_details,
 * mproc_executor_opts.memory_limit_via). */
typedef enum mproc_memory_limit_kind {
    MPROC_MEMLIMIT_NONE = 0,      /* details: no limit asked for */
    MPROC_MEMLIMIT_AUTO = 0,      /* opts: the first of the others that works */
    MPROC_MEMLIMIT_RLIMIT_AS = 1, /* setrlimit(RLIMIT_AS) in each worker */
    MPROC_MEMLIMIT_CGROUP2 = 2,   /* a cgroup v2 per worker (memory.max) */
    MPROC_MEMLIMIT_CGROUP1 = 3,   /* a cgroup v1 per worker (memory.limit_in_bytes) */
} mproc_memory_limit_kind;

/* What an executor is and how it runs its tasks (mproc_executor_info). */
typedef struct mproc_executor_details {
    mproc_executor_kind kind;
    int workers;
    /* Process executors: the start method in use (MPROC_START_DEFAULT
     * resolved); thread executors: MPROC_START_DEFAULT. */
    mproc_start_method start;
    size_t worker_memory_limit;           /* as configured, 0: none */
    mproc_memory_limit_kind memory_limit; /* how it is enforced */
    /* "none", "RLIMIT_AS", "cgroup v2" or "cgroup v1": static text */
    const char *memory_limit_how;
    bool jobserver;                       /* tasks hold jobserver tokens (MPROC_JOBSERVER) */
    char name[32];                        /* the workers' name prefix */
} mproc_executor_details;

/*
 * mproc_executor_info - describe ex in *out: its kind, workers, start
 * method, how its workers' memory limit is enforced, and whether it
 * shares a jobserver's CPU budget. Returns 0 or
 * -EINVAL (NULL ex or out). Thread-safe.
 */
MPROC_API int mproc_executor_info(const mproc_executor *ex, mproc_executor_details *out);

/* What an executor has counted since it started (mproc_executor_stats). */
typedef struct mproc_executor_counters {
    int workers;               /* as configured */
    uint64_t queued;           /* tasks accepted and not started yet (a snapshot) */
    uint64_t done;             /* tasks that finished with 0 */
    uint64_t failed;           /* tasks that finished with an error, of which: */
    uint64_t worker_died;      /*   their worker process died (MPROC_EWORKERDIED) */
    uint64_t timed_out;        /*   past their deadline (MPROC_ETASKTIMEOUT) */
    uint64_t out_of_memory;    /*   past worker_memory_limit (MPROC_EMEMLIMIT) */
    uint64_t restarts;         /* worker processes started to replace one, because: */
    uint64_t restarts_died;    /*   it died (signal or unexpected exit) */
    uint64_t restarts_timeout; /*   it was stopped at a task's deadline */
    uint64_t restarts_recycled;/*   it reached max_tasks_per_child */
    uint64_t restarts_init;    /*   its initializer failed or crashed */
    uint64_t restarts_memory;  /*   a task went past worker_memory_limit */
} mproc_executor_counters;

/*
 * mproc_executor_stats - copy ex's counters into *out. Counters are read
 * without stopping the executor: each is exact, their sum at one instant
 * is not. Thread executors count done/failed/queued only. Returns 0 or
 * -EINVAL. Thread-safe.
 */
MPROC_API int mproc_executor_stats(const mproc_executor *ex, mproc_executor_counters *out);

/* mproc_submit flags. */
#define MPROC_COPY_ARG 0x1u /* copy arg[0..len) at submit time */

/* Per-submit options (zero = defaults; more fields may be added). */
typedef struct mproc_submit_opts {
    unsigned flags;      /* MPROC_COPY_ARG */
    /* This task's own deadline (see task_timeout_ms): 0 keeps the
     * executor's, -1 means none, > 0 milliseconds. Process executors
     * only: a thread executor rejects a non-zero value (-EINVAL). */
    int64_t timeout_ms;
} mproc_submit_opts;

/*
 * mproc_submit - schedule fn(arg, len, ctx) and return its future in *out
 * (out may be NULL: nobody will look at the result).
 *
 * Thread executors pass `arg` by reference: the caller keeps arg[0..len)
 * alive and unchanged until the future is done. Process executors copy it
 * into the worker when the task starts, so the same rule holds until the
 * future is running. mproc_submit_ex with MPROC_COPY_ARG copies it at
 * submit instead. Thread-safe; callable from tasks.
 * Errors: -EINVAL (NULL ex/fn, arg NULL with len > 0, a bad timeout),
 * -E2BIG (len over a process executor's 32 MiB), MPROC_ESHUTDOWN,
 * MPROC_EBROKEN, -ENOMEM.
 */
MPROC_API int mproc_submit(mproc_executor *ex, mproc_task_fn fn,
                           const void *arg, size_t len, mproc_future **out);

/* mproc_submit_ex - mproc_submit with options (opts may be NULL). */
MPROC_API int mproc_submit_ex(mproc_executor *ex, mproc_task_fn fn,
                              const void *arg, size_t len,
                              const mproc_submit_opts *opts,
                              mproc_future **out);

/* ---- futures ------------------------------------------------------- */

/*
 * mproc_future_result - wait at most timeout_ms for the task to finish.
 * Returns 0 with *data and *len set to its result (data may be NULL when len
 * is 0; both pointers may be NULL); the bytes belong to the future and
 * stay valid until it is released. Otherwise returns the task's own
 * negative code, MPROC_ECANCELLED, MPROC_EBROKEN, -ETIMEDOUT (still
 * pending or running), or -EINVAL. Called from a task of the same
 * executor, it runs other tasks while it waits. Thread-safe.
 */
MPROC_API int mproc_future_result(mproc_future *f, int64_t timeout_ms,
                                  const void **data, size_t *len);

/*
 * mproc_future_error - for a finished future, its outcome without waiting:
 * *code is 0 (success) or the error (the task's code, MPROC_ECANCELLED,
 * MPROC_EBROKEN), *message the text from mproc_fail or "" (owned by the
 * future). Either pointer may be NULL. Returns 0, -EAGAIN when the future
 * is not finished yet, -EINVAL.
 */
MPROC_API int mproc_future_error(mproc_future *f, int *code,
                                 const char **message);

/*
 * mproc_future_cancel - cancel a task that has not started. Returns 1 if
 * it was cancelled (now or before), 0 if it is running or finished,
 * -EINVAL. A cancelled future's callbacks run (in the calling thread).
 * On a running task it returns 0 and makes mproc_cancel_requested true
 * for it, so a long task that polls may stop early -- except on a process
 * executor created with MPROC_CANCEL_KILL: there it returns 1 and the
 * task's worker is killed, so the future soon ends cancelled (unless the
 * task finished first: the kill races with its end).
 */
MPROC_API int mproc_future_cancel(mproc_future *f);

/* State queries (snapshots): finished (done, failed or cancelled),
 * running, cancelled. False for NULL. */
MPROC_API bool mproc_future_done(const mproc_future *f);
MPROC_API bool mproc_future_running(const mproc_future *f);
MPROC_API bool mproc_future_cancelled(const mproc_future *f);

/*
 * mproc_future_add_done_callback - call cb(f, userdata) exactly once when
 * the future finishes, is cancelled, or at once (in the calling thread)
 * if it already has. Callbacks run in the thread that finishes the future
 * (a worker, or the canceller), in the order added, with no mproc lock
 * held; they must not block for long. A callback added while the
 * finishing thread is already running the earlier ones runs at once in
 * the adding thread, possibly before those return (as in Python).
 * Errors: -EINVAL, -ENOMEM.
 */
MPROC_API int mproc_future_add_done_callback(mproc_future *f, mproc_future_cb cb,
                                             void *userdata);

/* mproc_future_retain - take one more reference (for handing a future to
 * another owner). Returns f. */
MPROC_API mproc_future *mproc_future_retain(mproc_future *f);

/* mproc_future_release - drop one reference; the future is freed when the
 * last goes (never while its task or its callbacks run). NULL is a no-op. */
MPROC_API void mproc_future_release(mproc_future *f);

/* ---- waiting for many ---------------------------------------------- */

typedef enum mproc_return_when {
    MPROC_FIRST_COMPLETED = 1, /* any one finished */
    MPROC_FIRST_EXCEPTION = 2, /* any one failed or was cancelled, else all finished */
    MPROC_ALL_COMPLETED = 3,   /* all finished */
} mproc_return_when;

/*
 * mproc_wait - wait at most timeout_ms until the futures meet
 * `return_when` (Python's concurrent.futures.wait). If done is not NULL,
 * done[i] is set to whether fs[i] had finished when the call returned;
 * *ndone (if not NULL) counts them. Returns 0 when the condition was met,
 * -ETIMEDOUT otherwise, -EINVAL (NULL fs with n > 0, NULL entry, bad
 * return_when). n == 0 returns 0 at once.
 */
MPROC_API int mproc_wait(mproc_future *const *fs, size_t n, int64_t timeout_ms,
                         mproc_return_when return_when, bool *done,
                         size_t *ndone);

/* Iterator yielding futures as they finish (Python's as_completed). */
typedef struct mproc_as_completed mproc_as_completed;

/*
 * mproc_as_completed_create - an iterator over fs[0..n) (the iterator
 * takes its own references; the caller keeps its own). Each future is
 * yielded exactly once, in the order they finish (already finished ones
 * first). Errors: -EINVAL, -ENOMEM.
 */
MPROC_API int mproc_as_completed_create(mproc_as_completed **out,
                                        mproc_future *const *fs, size_t n);

/*
 * mproc_as_completed_next - wait at most timeout_ms for the next finished
 * future. Returns 1 with *f set (a borrowed pointer, valid while the
 * caller holds its own reference or until the iterator is destroyed), 0
 * when every future has been yielded, -ETIMEDOUT, -EINVAL. One thread
 * at a time per iterator.
 */
MPROC_API int mproc_as_completed_next(mproc_as_completed *it, int64_t timeout_ms,
                                      mproc_future **f);

/* mproc_as_completed_destroy - free the iterator (futures not yet
 * finished are simply no longer watched). NULL is a no-op. */
MPROC_API void mproc_as_completed_destroy(mproc_as_completed *it);

/* ---- pool-style calls: map, imap, apply ---------------------------- */

/* Options for the map family. Zero is the default; more may be added. */
typedef struct mproc_map_opts {
    /* Items per task. 0 picks one as Python's Pool does: n / (4 x
     * workers), rounded up. */
    size_t chunksize;
    unsigned flags;  /* MPROC_COPY_ARG: copy the items array at the call */
    /*
     * 0 (the default): each item's result may have any length (general
     * mode). Non-zero (fixed-size mode): every item's result is exactly
     * result_size bytes, stored densely in one array of n * result_size
     * bytes (item i at offset i * result_size), which
     * mproc_results_data hands out once the map is complete; a success
     * costs no per-item allocation or bookkeeping. In this mode:
     *   - mproc_return / mproc_result_buffer of result_size bytes go
     *     straight to the array (a process worker may stage each result
     *     in a slot of its own until the task returns);
     *   - an item that hands back nothing succeeds with result_size zero
     *     bytes;
     *   - an item that hands back a result of any other length (0
     *     included), even if it later hands back one of the right length,
     *     fails with -EMSGSIZE and the message "result of <len> bytes, but
     *     result_size is <result_size>" -- unless its task returns an
     *     error of its own, which then is the item's code (and a message
     *     from mproc_fail replaces that one). The call itself succeeds
     *     (the bytes go to a buffer that is discarded; -ENOMEM / NULL if
     *     there is no memory for it), so the task goes on normally;
     *   - a failed item's bytes in the array are zero, and
     *     mproc_results_get / mproc_imap_next report it with data NULL
     *     and len 0; a successful one with len == result_size.
     * The array is allocated by the call (large ones as fresh zero pages,
     * faulted in by the workers that fill them). n * result_size must fit
     * a size_t (else -EINVAL).
     */
    size_t result_size;
} mproc_map_opts;

/* The results of a map: one per item, in item order. */
typedef struct mproc_results mproc_results;

/* One item's outcome (pointers owned by the results object). */
typedef struct mproc_item {
    size_t index;         /* position in the items array */
    int code;             /* 0, or the item's error (MPROC_ECANCELLED, ...) */
    const void *data;     /* its result bytes (len may be 0) */
    size_t len;
    const char *message;  /* from mproc_fail, or "" */
} mproc_item;

/*
 * mproc_map - call fn(items + i * item_size, item_size, ctx) for i in
 * 0..n-1 on the executor, `chunksize` items per task, and wait for all.
 * Returns 0 if every item succeeded, else the code of the first failed
 * item in item order (as Python raises it); in both cases *out receives
 * the results (NULL on a call error), and every other item's result is
 * still there. Items are passed by reference (keep them alive until the
 * call returns; for map_async/imap until the results are complete)
 * unless MPROC_COPY_ARG. In general mode, results of up to 8 bytes are
 * stored without an allocation and an item's result is at most 4 GiB - 1
 * bytes; with opts->result_size set, results are stored densely instead
 * (see mproc_map_opts and mproc_results_data). The results
 * object stays usable after the executor is destroyed. Called from a task, it runs other tasks while it waits.
 * Errors: -EINVAL (NULL ex/fn/out, items NULL with n > 0, item_size 0 with
 * n > 0, n * item_size or n * result_size overflowing a size_t), -ENOMEM,
 * MPROC_ESHUTDOWN, MPROC_EBROKEN.
 */
MPROC_API int mproc_map(mproc_executor *ex, mproc_task_fn fn, const void *items,
                        size_t item_size, size_t n, const mproc_map_opts *opts,
                        mproc_results **out);

/*
 * mproc_map_async - start a map and return at once: *out receives the
 * results object (filled as chunks finish) and *done (if not NULL) a
 * future that finishes when every item has, with the code mproc_map
 * would return. callback(done, userdata) runs when it finishes with 0,
 * error_callback(done, userdata) when it finishes with an error (either
 * may be NULL; they run on the thread finishing the last chunk). out may
 * be NULL (nobody reads the results). The done future counts as running
 * from the start; mproc_future_cancel on it cancels nothing but makes
 * mproc_cancel_requested true for the items. A shutdown from another
 * thread while the map is being started: if it keeps out the first
 * chunk, the call fails with MPROC_ESHUTDOWN; if a later one, the call
 * succeeds and the items of that chunk and every later one fail with
 * MPROC_ESHUTDOWN (queued chunks it cancels read MPROC_ECANCELLED).
 * Errors as mproc_map (a map of 0 items succeeds even after shutdown, as
 * Python's Executor.map).
 */
MPROC_API int mproc_map_async(mproc_executor *ex, mproc_task_fn fn, const void *items,
                              size_t item_size, size_t n, const mproc_map_opts *opts,
                              mproc_future_cb callback, mproc_future_cb error_callback,
                              void *userdata, mproc_results **out, mproc_future **done);

/* mproc_results_count - number of items, or 0 for NULL. */
MPROC_API size_t mproc_results_count(const mproc_results *r);

/*
 * mproc_results_get - item i's outcome into *item. Returns the item's
 * code (0 on success), -EAGAIN if its chunk has not finished yet, -EINVAL
 * (NULL, i out of range). Thread-safe once the item is finished. With
 * fixed-size results, item->data of a successful item points into the
 * dense array (len == result_size); a failed item has data NULL, len 0.
 */
MPROC_API int mproc_results_get(const mproc_results *r, size_t i, mproc_item *item);

/*
 * mproc_results_data - the dense result array of a map made with a
 * non-zero mproc_map_opts.result_size: n * result_size bytes, item i at
 * offset i * result_size (a failed item's bytes are zero: check the map's
 * return code, or mproc_results_get for single items). *result_size (if
 * not NULL) receives result_size, or 0 on error. The array starts at an
 * address aligned for any type (max_align_t), so items are aligned as far
 * as result_size allows. It belongs to the results object: read-only,
 * valid until mproc_results_destroy. For n == 0 it is a valid pointer to
 * no bytes.
 * Returns NULL and sets errno on error: EINVAL (r NULL, or a map in
 * general mode -- result_size 0), EAGAIN (not every item has finished
 * yet: it is available once mproc_map has returned, or once the done
 * future of mproc_map_async has finished -- in its callbacks too).
 * Thread-safe: any thread may call it and read the array once it is
 * complete; it never blocks.
 */
MPROC_API const void *mproc_results_data(const mproc_results *r, size_t *result_size);

/* mproc_results_destroy - drop the caller's results. Chunks still running
 * finish on their own; their memory is freed after. NULL is a no-op. */
MPROC_API void mproc_results_destroy(mproc_results *r);

/* Iterator over a map's results as they arrive. */
typedef struct mproc_imap_iter mproc_imap_iter;

/*
 * mproc_imap / mproc_imap_unordered - start a map and return an iterator
 * that yields each item's outcome as soon as it is available: in item
 * order (imap), or in the order chunks finish (imap_unordered). Errors as
 * mproc_map.
 */
MPROC_API int mproc_imap(mproc_executor *ex, mproc_task_fn fn, const void *items,
                         size_t item_size, size_t n, const mproc_map_opts *opts,
                         mproc_imap_iter **out);
MPROC_API int mproc_imap_unordered(mproc_executor *ex, mproc_task_fn fn, const void *items,
                                   size_t item_size, size_t n,
                                   const mproc_map_opts *opts, mproc_imap_iter **out);

/*
 * mproc_imap_next - wait at most timeout_ms for the next item. Returns 1
 * with *item filled (check item->code: a failed item is yielded in its
 * place, and iteration goes on), 0 when all items were yielded,
 * -ETIMEDOUT, -EINVAL. The item's pointers stay valid until the iterator
 * is destroyed. One thread at a time per iterator.
 */
MPROC_API int mproc_imap_next(mproc_imap_iter *it, int64_t timeout_ms, mproc_item *item);

/* mproc_imap_destroy - free the iterator (the map's remaining chunks
 * finish on their own). NULL is a no-op. */
MPROC_API void mproc_imap_destroy(mproc_imap_iter *it);

/*
 * mproc_apply - run one task and wait for it (Python's Pool.apply).
 * Returns the task's code (or a submit error); *out (if not NULL)
 * receives the finished future, whose result the caller reads with
 * mproc_future_result and then releases.
 */
MPROC_API int mproc_apply(mproc_executor *ex, mproc_task_fn fn, const void *arg,
                          size_t len, mproc_future **out);

/*
 * mproc_apply_async - submit one task (Python's Pool.apply_async):
 * callback(f, userdata) runs when it succeeds, error_callback(f, userdata)
 * when it fails or is cancelled (either may be NULL), in the thread that
 * finishes it. *out as for mproc_submit. Errors as mproc_submit.
 */
MPROC_API int mproc_apply_async(mproc_executor *ex, mproc_task_fn fn, const void *arg,
                                size_t len, mproc_future_cb callback,
                                mproc_future_cb error_callback, void *userdata,
                                mproc_future **out);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_EXEC_H */
