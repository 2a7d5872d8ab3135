/*
 * mproc/workers.h -- threads (Python's threading.Thread), and later
 * processes.
 *
 * A thread is an opaque handle. Life cycle, as in Python:
 *   mproc_thread_create   New        (nothing runs yet)
 *   mproc_thread_start    Runnable   (the function runs on its own thread)
 *   mproc_thread_join     waits for Terminated, returns the result
 *   mproc_thread_destroy  drops the caller's handle (the thread itself
 *                         keeps running if it was started and not joined)
 *
 * Non-daemon threads are joined when the program exits normally (return
 * from main or exit()), as Python does at interpreter shutdown; daemon
 * threads are not waited for and die with the process.
 *
 * A thread function returns 0, or a negative code meaning it failed
 * (Python's uncaught exception). A failure is reported through the
 * thread excepthook, which by default prints one line on stderr naming
 * the thread ("Exception in thread Hilo-1: ..."), and is what join
 * returns as the thread's result.
 */
#ifndef MPROC_WORKERS_H
#define MPROC_WORKERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct mproc_thread mproc_thread;

/* A thread's body: returns 0 or a negative error code (its failure). */
typedef int (*mproc_thread_fn)(void *arg);

/* Longest thread name kept, not counting the terminating NUL. The OS
 * sees the first 15 bytes (the kernel's limit), e.g. in `top -H`. */
#define MPROC_THREAD_NAME_MAX 63

/* Options for mproc_thread_create. Zero is the default for every field;
 * more fields may be added at the end. */
typedef struct mproc_thread_opts {
    mproc_thread_fn fn;  /* required */
    void *arg;           /* passed to fn; owned by the caller */
    const char *name;    /* copied; NULL means "Thread-N" */
    bool daemon;         /* not joined at exit */
    size_t stack_size;   /* 0: the system default */
} mproc_thread_opts;

/*
 * mproc_thread_create - make a thread handle in state New (not running).
 * The name is copied (truncated to MPROC_THREAD_NAME_MAX bytes).
 * Errors: -EINVAL (NULL out/opts/fn), -ENOMEM.
 * *out is owned by the caller until mproc_thread_destroy.
 */
MPROC_API int mproc_thread_create(mproc_thread **out,
                                  const mproc_thread_opts *opts);

/*
 * mproc_thread_start - run the thread's function on a new OS thread.
 * Errors: -EINVAL (NULL), -EBUSY (already started: a thread starts once,
 * as in Python), -EAGAIN (the system refused a thread), -ENOMEM.
 * Thread-safe.
 */
MPROC_API int mproc_thread_start(mproc_thread *t);

/*
 * mproc_thread_join - wait at most timeout_ms for the thread to end, and
 * store its function's return value in *result (if result is not NULL).
 * Joining a thread that has already ended returns at once, any number of
 * times, from any number of threads.
 * Errors: -ETIMEDOUT (still running), -EDEADLK (a thread joining itself),
 * -EINVAL (NULL, never started, timeout < -1, or a thread mproc did not
 * start: MainThread or a Dummy-N thread, whose end mproc cannot see).
 */
MPROC_API int mproc_thread_join(mproc_thread *t, int64_t timeout_ms,
                                int *result);

/*
 * mproc_thread_destroy - release the caller's handle. A thread that is
 * running goes on running and is still joined at exit if non-daemon; its
 * resources are freed when it ends. NULL is a no-op. After the call the
 * handle must not be used. Must not race with other calls on the same
 * handle from the caller's side (other handles to it, such as those from
 * mproc_thread_current, stay valid while the thread runs).
 */
MPROC_API void mproc_thread_destroy(mproc_thread *t);

/* mproc_thread_is_alive - true from start until the function returns. */
MPROC_API bool mproc_thread_is_alive(const mproc_thread *t);

/* mproc_thread_native_id - the kernel thread id (as in /proc/<pid>/task),
 * or 0 before the thread has started. */
MPROC_API pid_t mproc_thread_native_id(const mproc_thread *t);

/* mproc_thread_daemon - whether the thread is a daemon. */
MPROC_API bool mproc_thread_daemon(const mproc_thread *t);

/*
 * mproc_thread_name - copy the thread's name into buf (cap bytes, always
 * NUL-terminated when cap > 0). Returns the name's full length, or
 * -EINVAL. Thread-safe against mproc_thread_set_name.
 */
MPROC_API int mproc_thread_name(const mproc_thread *t, char *buf, size_t cap);

/*
 * mproc_thread_set_name - rename the thread (copied; truncated to
 * MPROC_THREAD_NAME_MAX). A running thread's OS name changes too, so
 * ps/top show it. Errors: -EINVAL (NULL).
 */
MPROC_API int mproc_thread_set_name(mproc_thread *t, const char *name);

/*
 * mproc_thread_current - the calling thread's handle (Python's
 * threading.current_thread()). The main thread is "MainThread"; a thread
 * not started by mproc gets a "Dummy-N" handle. The handle is owned by
 * mproc and stays valid while the calling thread runs; do not destroy it.
 * Never NULL (returns NULL only if memory for a dummy handle ran out).
 */
MPROC_API mproc_thread *mproc_thread_current(void);

/* One live thread, as listed by mproc_thread_enumerate. */
typedef struct mproc_thread_info {
    char name[MPROC_THREAD_NAME_MAX + 1];
    pid_t native_id;
    bool daemon;
    bool alive;
    bool main;      /* the main thread */
} mproc_thread_info;

/*
 * mproc_thread_enumerate - list the live threads mproc knows: the main
 * thread, threads started by mproc that have not ended, and dummy
 * threads that called mproc_thread_current (Python's
 * threading.enumerate()). Fills at most cap entries of out (out may be
 * NULL when cap is 0) and returns the number of live threads, which may
 * be more than cap; or -EINVAL. Thread-safe.
 */
MPROC_API int mproc_thread_enumerate(mproc_thread_info *out, size_t cap);

/* mproc_thread_active_count - the number of threads enumerate would list
 * (Python's threading.active_count()). */
MPROC_API int mproc_thread_active_count(void);

/*
 * mproc_thread_fail - attach a message to the calling thread's failure
 * and return `code`, so a thread function writes
 *     return mproc_thread_fail(-EIO, "cannot read %s", path);
 * The message (up to 255 bytes) is passed to the excepthook. A code >= 0
 * is returned unchanged and no message is kept.
 */
MPROC_API int mproc_thread_fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* What the excepthook is told about a failed thread. Valid only during
 * the hook call. */
typedef struct mproc_thread_failure {
    mproc_thread *thread;
    const char *name;
    pid_t native_id;
    int code;             /* the function's negative return value */
    const char *message;  /* from mproc_thread_fail, or "" */
} mproc_thread_failure;

typedef void (*mproc_thread_excepthook_fn)(const mproc_thread_failure *f,
                                           void *userdata);

/*
 * mproc_thread_set_excepthook - replace the hook called, on the failing
 * thread, when a thread function returns a negative code (Python's
 * threading.excepthook). NULL restores the default, which writes
 *     Exception in thread NAME (native id N): CODE_NAME: text[: message]
 * to stderr. Thread-safe; a hook already running finishes with the old
 * userdata.
 */
MPROC_API void mproc_thread_set_excepthook(mproc_thread_excepthook_fn hook,
                                           void *userdata);

/* ---- tasks --------------------------------------------------------- */

/*
 * A task is what an executor (exec.h) or a process runs:
 *
 *     int fn(const void *arg, size_t len, mproc_ctx *ctx);
 *
 * It returns 0 (or any positive value, taken as 0), or a negative code
 * that is its failure (Python's exception); mproc_fail attaches a
 * message. arg/len are the bytes it was given. ctx is valid only while
 * it runs.
 */
typedef struct mproc_ctx mproc_ctx;
typedef int (*mproc_task_fn)(const void *arg, size_t len, mproc_ctx *ctx);

/* ---- inside a task ------------------------------------------------- */

/*
 * mproc_return - set the task's result to a copy of data[0..len)
 * (replacing any earlier one). Returns 0, -EINVAL (NULL ctx, data NULL
 * with len > 0), -ENOMEM. Results of up to 24 bytes are stored in the
 * future itself, with no allocation. A process's task (mproc_process)
 * has nobody to hand a result to: it is accepted and dropped.
 */
MPROC_API int mproc_return(mproc_ctx *ctx, const void *data, size_t len);

/*
 * mproc_return is also a macro, as getc is: when the task's place has a
 * result slot of exactly len bytes (an item of a map with a result_size),
 * the copy is made right at the call, with no call into the library --
 * for a task as small as x*x that call was most of its cost. Anything
 * else calls the function. Each argument is evaluated once;
 * (mproc_return)(...) and &mproc_return name the function.
 * struct mproc__ctx_head is how the macro sees the start of every
 * context; it is not for any other use.
 */
struct mproc__ctx_head {
    void *slot;      /* where a result of exactly slot_len bytes goes, or NULL */
    size_t slot_len;
};

/* mproc__return_inline - what the mproc_return macro expands to: the
 * copy into a slot of exactly len bytes, else the function. Same
 * contract, errors and thread safety as mproc_return; not for direct
 * use. */
static inline int mproc__return_inline(mproc_ctx *ctx, const void *data, size_t len)
{
    /* A context starts with its head (workers/ctx.h). */
    struct mproc__ctx_head *h = (struct mproc__ctx_head *)(void *)ctx;
    if (ctx && h->slot && len == h->slot_len && data) {
        memcpy(h->slot, data, len);
        return 0;
    }
    return (mproc_return)(ctx, data, len);
}

#define mproc_return(ctx, data, len) mproc__return_inline((ctx), (data), (len))

/*
 * mproc_result_buffer - a buffer of len bytes that is the task's result;
 * the task writes it in place. Valid until the task returns (calling it
 * again replaces the buffer, keeping the bytes already written up to the
 * smaller length). On a thread executor it is the future's own memory;
 * on a process executor, from 4 KiB on, memory the caller's process
 * reads the result from directly (see exec.h). NULL (with errno ENOMEM or
 * EINVAL) on failure.
 */
MPROC_API void *mproc_result_buffer(mproc_ctx *ctx, size_t len);

/*
 * mproc_fail - attach a message (printf format, up to 255 bytes kept) to
 * the task's failure and return `code`, so a task writes
 *     return mproc_fail(ctx, -EINVAL, "bad row %d", i);
 * A code >= 0 is returned unchanged and no message is kept.
 */
MPROC_API int mproc_fail(mproc_ctx *ctx, int code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* mproc_cancel_requested - true once the executor was shut down with
 * cancel_futures, or mproc_future_cancel was called on the task's future
 * while it runs (a long task may poll it and stop early); in a process's
 * task, true once mproc_process_terminate was called on it. */
MPROC_API bool mproc_cancel_requested(const mproc_ctx *ctx);

/* mproc_ctx_worker - the index (0 .. workers-1) of the worker running the
 * task (0 in a process's task), or -EINVAL. */
MPROC_API int mproc_ctx_worker(const mproc_ctx *ctx);

/* ---- processes (Python's multiprocessing.Process) ------------------- */

typedef struct mproc_process mproc_process;

/*
 * How a child process starts:
 *   MPROC_START_FORK        fork() this process; the child runs the task
 *                           in a copy of the parent's memory. Refused
 *                           (MPROC_ETHREADS) while the parent runs more
 *                           than one thread, unless MPROC_FORK_THREADS is
 *                           given: a copy of a threaded process may hold
 *                           locks of threads that do not exist there.
 *   MPROC_START_FORKSERVER  children are forked by a single-threaded
 *                           server process started on first use (start it
 *                           early, before threads, with
 *                           mproc_forkserver_start): safe in threaded
 *                           programs, and cheaper than spawn. The task
 *                           must be in the program (or a library loaded
 *                           before the server started); the child sees
 *                           the program as it was when the server started,
 *                           not the parent's current memory.
 *   MPROC_START_SPAWN       the program is executed afresh
 *                           (/proc/self/exe) and runs the task before
 *                           main() (from a constructor of mproc's). The
 *                           task is found there by its exported symbol
 *                           name if it has one (-rdynamic), otherwise by
 *                           its place in its object -- the program or a
 *                           library it was linked with --, so static
 *                           functions work too. mproc_process_start fails
 *                           with MPROC_ENOSYMBOL when the task is in no
 *                           object a fresh start of the program loads: a
 *                           library loaded with dlopen, or an address
 *                           that is not code.
 * MPROC_START_DEFAULT is MPROC_START_FORK (the notes' model: the child
 * starts as a copy of the parent); a threaded program gets MPROC_ETHREADS
 * from it and chooses.
 */
typedef enum mproc_start_method {
    MPROC_START_DEFAULT = 0,
    MPROC_START_FORK,
    MPROC_START_FORKSERVER,
    MPROC_START_SPAWN,
} mproc_start_method;

/* mproc_process_opts.flags */
#define MPROC_FORK_THREADS 0x1u /* MPROC_START_FORK even with threads running */

typedef struct mproc_process_opts {
    mproc_task_fn fn;          /* required: runs in the child as fn(arg, len, ctx) */
    const void *arg;           /* copied by create (may be NULL with len 0) */
    size_t len;
    const char *name;          /* default "Process-N", N counting from 1 */
    bool daemon;               /* dies with this process (see below) */
    mproc_start_method start;
    unsigned flags;            /* MPROC_FORK_THREADS */
} mproc_process_opts;

/*
 * mproc_process_create - a process object that will run opts->fn (Python's
 * Process(target=..., args=...)); nothing starts yet. The argument bytes
 * are copied. Errors: -EINVAL (NULL out/opts/fn, arg NULL with len > 0,
 * unknown start method or flags), -ENOMEM.
 */
MPROC_API int mproc_process_create(mproc_process **out, const mproc_process_opts *opts);

/*
 * mproc_process_start - start the child. The task's return value decides
 * the exit code: 0 or positive -> 0; negative -> 1, after a line on the
 * child's stderr "Process NAME (pid N): CODE_NAME: text[: message]" (the
 * message from mproc_fail), as Python prints an uncaught exception. A
 * process is started at most once.
 * Errors: -EINVAL (NULL, already started), MPROC_ETHREADS (fork with
 * threads, see above), MPROC_ENOSYMBOL (spawn: task not found, see
 * MPROC_START_SPAWN), -EAGAIN /
 * -ENOMEM (the system refused a process), or another -errno.
 *
 * Daemon children are killed (SIGKILL) when this process ends, however it
 * ends -- each watches this process through a pidfd, so the death of the
 * thread that started it does not count. At normal exit (return from
 * main, exit()) daemon children are terminated (SIGTERM, then SIGKILL
 * after 1 s) and non-daemon children are waited for, as Python does.
 */
MPROC_API int mproc_process_start(mproc_process *p);

/*
 * mproc_process_join - wait at most timeout_ms for the child to end, and
 * reap it. Returns 0 once it has ended (see mproc_process_exitcode),
 * -ETIMEDOUT, -EINVAL (NULL, not started). Thread-safe.
 */
MPROC_API int mproc_process_join(mproc_process *p, int64_t timeout_ms);

/* mproc_process_is_alive - started and not ended yet (reaps it if it has
 * ended). False for NULL. */
MPROC_API bool mproc_process_is_alive(mproc_process *p);

/*
 * mproc_process_terminate / mproc_process_kill - send SIGTERM / SIGKILL to
 * the child, through its pidfd (never to a recycled pid). Returns 0 (also
 * when it has ended already), -EINVAL (NULL, not started), -errno.
 */
MPROC_API int mproc_process_terminate(mproc_process *p);
MPROC_API int mproc_process_kill(mproc_process *p);

/* mproc_process_pid - the child's pid, or 0 before start / for NULL. */
MPROC_API pid_t mproc_process_pid(const mproc_process *p);

/*
 * mproc_process_exitcode - once the child has ended (after join or
 * is_alive reaped it): *code = its exit status, or minus the signal that
 * killed it (Python's exitcode). Returns 0, -EAGAIN (not ended or not
 * reaped yet, or never started), -EINVAL.
 */
MPROC_API int mproc_process_exitcode(const mproc_process *p, int *code);

/* mproc_process_name - the process's name (valid until destroy), "" for
 * NULL. */
MPROC_API const char *mproc_process_name(const mproc_process *p);

/*
 * mproc_process_destroy - drop the handle. A child still running goes on
 * (daemon or not, with the rules above) and mproc still reaps it, but
 * only at one of its own calls: once the child has ended, the next
 * mproc_process_create, mproc_process_start or mproc_process_destroy in
 * this process reaps it, and so does the exit handler. Until then a
 * fork-started child shows as a zombie (a forkserver-started child is
 * reaped by the server as soon as it ends). To never see one, join
 * before destroying. NULL is a no-op.
 */
MPROC_API void mproc_process_destroy(mproc_process *p);

/*
 * mproc_forkserver_start - start the fork server now (otherwise the first
 * MPROC_START_FORKSERVER start does), ideally first thing in main(),
 * while the program runs one thread and holds little memory. Returns 0
 * (also if it runs already) or -errno. The server exits when this
 * process does.
 */
MPROC_API int mproc_forkserver_start(void);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_WORKERS_H */
