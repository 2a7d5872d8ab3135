/*
 * workers/thread.c -- named threads with a registry (Python's
 * threading.Thread, current_thread, enumerate, excepthook).
 *
 * Design
 * ======
 *
 * Kinds of handle
 *   USER   made by mproc_thread_create, runs `fn` on a pthread we create.
 *   MAIN   the process's main thread: static storage (main_storage), never
 *          freed, registered by the one-time initialisation. "Main" is the
 *          thread whose tid equals getpid().
 *   DUMMY  a thread mproc did not start that called mproc_thread_current;
 *          heap allocated, owned by the thread itself and freed by the
 *          destructor of `dummy_key` when that thread exits.
 *
 * State machine (t->state, atomic)
 *
 *     NEW --start()--> STARTING --trampoline--> RUNNING --fn returns--> DONE
 *                         |
 *                         +--pthread_create failed--> NEW (start may retry)
 *
 *   start() wins the NEW->STARTING CAS (a loser gets -EBUSY), creates the
 *   pthread, and waits for the `started` event. The new thread registers
 *   itself, records its tid, applies its OS name and stores RUNNING before
 *   setting `started`, so when start() returns the thread is alive, listed
 *   and has a native id (as Python's start() waits for _started).
 *   When fn returns, the thread stores its result, calls the excepthook if
 *   the result is negative (still alive, as in Python), unlinks itself from
 *   the registry and stores DONE, and only then sets the `done` event that
 *   joiners wait on. MAIN and DUMMY handles are RUNNING from birth.
 *
 * Reference counting (t->refs, atomic)
 *   The user's handle holds one reference (from create), a started thread
 *   holds one for as long as its trampoline runs (taken by start() before
 *   pthread_create, dropped as the trampoline's last touch of `t`), and the
 *   exit-time joiner takes a temporary one. Whoever drops the last
 *   reference frees the handle, so mproc_thread_destroy on a running thread
 *   just drops the user's reference and the thread frees itself at the end.
 *   The decrement is acq_rel: every earlier access by the other holder
 *   happens before the free. A registered (linked) thread always holds its
 *   own reference, so a pointer found in the registry under the registry
 *   lock may be referenced (refs++) safely.
 *
 * Joining
 *   join waits on `done` (with the caller's timeout), then "reaps" the OS
 *   thread: under t->join_lock, the first joiner calls pthread_join and
 *   marks the thread REAPED; later joiners (any number, from any thread)
 *   find it reaped and return the stored result at once. destroy detaches
 *   an unreaped thread instead (under the same lock), so a handle destroyed
 *   without join leaks nothing. start() holds join_lock across
 *   pthread_create, so a joiner can never see a RUNNING thread whose
 *   pthread_t is not yet recorded. Only the process that created the
 *   pthread reaps it (t->pid): in a forked child the thread does not exist.
 *
 *   MAIN and DUMMY threads end outside mproc's control, so joining one
 *   from another thread is -EINVAL (joining oneself is -EDEADLK first).
 *
 * Names
 *   A name is copied into the handle under reg_lock. The OS name (first 15
 *   bytes, never cut inside a UTF-8 character) is applied by the thread
 *   itself in the trampoline, and by set_name while the thread is linked
 *   (alive, so its tid cannot have been reused): prctl for the caller,
 *   /proc/self/task/<tid>/comm for another thread, under reg_lock so the
 *   last name set is the one the OS shows.
 *
 * Registry
 *   A circular doubly-linked list (head `reg`) of live threads: MAIN, USER
 *   threads between their registration in the trampoline and their unlink
 *   after fn, DUMMY threads until their key destructor runs. Protected by
 *   reg_lock, which also protects every handle's name (so names are
 *   consistent across fork, see below) and the `linked` flags.
 *
 * Lock order
 *   reg_lock  ->  (nothing: no other lock is taken while holding it)
 *   t->join_lock  ->  (nothing)
 *   hook_lock  ->  (nothing)
 *   No user code (fn, excepthook) ever runs under one of these locks.
 *   The atfork prepare handler takes reg_lock then hook_lock; nothing else
 *   nests them, so that order cannot deadlock.
 *
 * fork
 *   prepare takes reg_lock and hook_lock so the child gets a consistent
 *   list; the parent handler releases them; the child handler re-initialises
 *   them (they are owned by the parent's tid, which means nothing in the
 *   child), then unlinks every registered thread except the forking one,
 *   marking each DONE and setting its `done` event (joins in the child
 *   return at once, with result 0, as Python's join of a thread that did
 *   not survive fork does). Those handles are leaked in the child: their
 *   references belong to threads that do not exist there. The forking
 *   thread becomes the child's main thread (its tid is the child's pid).
 *   Known limit: a thread being started (STARTING, not yet registered) at
 *   the instant of fork is not seen by the child handler; joining it in
 *   the child waits for ever.
 *
 * Exit
 *   At the first start an atexit handler is registered; it joins, one at a
 *   time, every registered non-daemon USER thread except the caller, and
 *   repeats until none is left (threads started meanwhile are joined too).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mproc/os.h"
#include "mproc/sync.h"
#include "mproc/workers.h"
#include "os/atomic.h"

enum { TS_NEW, TS_STARTING, TS_RUNNING, TS_DONE };
enum { TK_USER, TK_MAIN, TK_DUMMY };
/* What has become of the OS thread (under join_lock). */
enum { OS_NONE, OS_JOINABLE, OS_REAPED };

/* Linux limits thread names to 16 bytes including the NUL. */
#define OS_NAME_MAX 15
/* Size of the per-thread failure message (mproc_thread_fail). */
#define MESSAGE_MAX 256

struct mproc_thread {
    int refs;           /* atomic: see "Reference counting" */
    int state;          /* atomic: TS_* */
    int result;         /* atomic: fn's return value, published by `done` */
    pid_t tid;          /* atomic: kernel tid, 0 before start */
    int kind;           /* TK_*, immutable */
    bool daemon;        /* immutable */
    bool linked;        /* in the registry (reg_lock) */
    mproc_thread_fn fn; /* immutable */
    void *arg;          /* immutable */
    size_t stack_size;  /* immutable */
    pid_t pid;          /* process that created the pthread: set before
                         * pthread_create (or by the fork child handler),
                         * read without a lock after start returned */
    int os_state;       /* OS_* (join_lock) */
    pthread_t pthread;  /* valid when os_state != OS_NONE (join_lock) */
    mproc_lock join_lock;
    mproc_event started; /* set by the thread once it is RUNNING */
    mproc_event done;    /* set after fn returned and the thread unlinked */
    struct mproc_thread *prev, *next; /* registry links (reg_lock) */
    char name[MPROC_THREAD_NAME_MAX + 1]; /* reg_lock */
};

/* ---- global state ---------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;

static mproc_lock reg_lock;          /* registry, names, main_handle */
static mproc_thread reg;             /* list head (only prev/next used) */
static mproc_thread main_storage;    /* the MAIN handle */
static mproc_thread *main_handle;    /* &main_storage, or the forker in a child */

static pthread_key_t dummy_key;      /* destructor frees DUMMY handles */
static bool dummy_key_ok;            /* key creation succeeded (immutable) */

static unsigned name_counter;        /* atomic: Thread-N / Dummy-N numbering */

static mproc_lock hook_lock;         /* guards hook + hook_userdata */
static mproc_thread_excepthook_fn hook_fn;
static void *hook_userdata;

/* The calling thread's handle (USER, DUMMY, or MAIN once looked up). */
static _Thread_local mproc_thread *tls_self;
/* The calling thread's failure message, from mproc_thread_fail. */
static _Thread_local char tls_message[MESSAGE_MAX];

/* ---- small helpers --------------------------------------------------- */

/* A call on a valid object failed: a bug in mproc or memory corruption.
 * Debug builds stop here; release builds go on (STYLE.md, item 8). */
static void must(int rc, const char *what)
{
#ifndef NDEBUG
    if (rc != 0) {
        fprintf(stderr, "mproc: thread: %s failed: %s\n", what,
                mproc_strerror(rc));
        abort();
    }
#else
    (void)rc;
    (void)what;
#endif
}

static void reg_lock_acquire(void)
{
    must(mproc_lock_acquire(&reg_lock, -1), "registry lock");
}

static void reg_lock_release(void)
{
    must(mproc_lock_release(&reg_lock), "registry unlock");
}

/* Length of the longest prefix of s that is at most max bytes and does
 * not end inside a UTF-8 sequence. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n <= max)
        return n;
    n = max;
    /* Back off over continuation bytes (10xxxxxx) to the lead byte, and
     * drop that lead byte too: its sequence would be cut. */
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* Copy a name into a handle's buffer, truncated safely. reg_lock held, or
 * the handle not yet shared. */
static void copy_name(mproc_thread *t, const char *name)
{
    size_t n = utf8_prefix(name, MPROC_THREAD_NAME_MAX);
    memcpy(t->name, name, n);
    t->name[n] = '\0';
}

/* "Thread-N" / "Dummy-N": one counter for both, from 1, as in Python. */
static void default_name(mproc_thread *t, const char *prefix)
{
    unsigned n = mproc__fetch_add(&name_counter, 1u, __ATOMIC_RELAXED) + 1;
    snprintf(t->name, sizeof t->name, "%s-%u", prefix, n);
}

/*
 * Give the OS thread `tid` the first 15 bytes of `name`. Best effort: a
 * kernel without /proc or a failing prctl leaves the old OS name, which
 * only affects what ps/top show. Called with reg_lock held and the thread
 * linked, so it is alive and `tid` cannot have been reused.
 */
static void set_os_name(pid_t tid, const char *name)
{
    char os_name[OS_NAME_MAX + 1];
    size_t n = utf8_prefix(name, OS_NAME_MAX);
    memcpy(os_name, name, n);
    os_name[n] = '\0';
    if (tid == gettid()) {
        (void)pthread_setname_np(pthread_self(), os_name);
        return;
    }
    /* Another thread: what pthread_setname_np does, by tid, so we need no
     * pthread_t (MAIN and DUMMY handles have none we could trust). */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/comm", (int)tid);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t w;
    do
        w = write(fd, os_name, n);
    while (w < 0 && errno == EINTR);
    close(fd);
}

/* ---- registry -------------------------------------------------------- */

/* reg_lock held. */
static void reg_link(mproc_thread *t)
{
    t->prev = reg.prev;
    t->next = &reg;
    reg.prev->next = t;
    reg.prev = t;
    t->linked = true;
}

/* reg_lock held. */
static void reg_unlink(mproc_thread *t)
{
    if (!t->linked)
        return;
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->linked = false;
}

/* Set up the fields every kind of handle shares. */
static int handle_init(mproc_thread *t, int kind)
{
    int rc;
    t->kind = kind;
    t->refs = 1;
    t->state = TS_NEW;
    t->os_state = OS_NONE;
    if ((rc = mproc_lock_init(&t->join_lock, 0)) != 0)
        return rc;
    if ((rc = mproc_event_init(&t->started, 0)) != 0)
        return rc;
    return mproc_event_init(&t->done, 0);
}

static void handle_free(mproc_thread *t)
{
    if (t->kind == TK_MAIN)
        return; /* static storage */
    (void)mproc_event_destroy(&t->done);
    (void)mproc_event_destroy(&t->started);
    (void)mproc_lock_destroy(&t->join_lock);
    free(t);
}

static void ref_get(mproc_thread *t)
{
    /* Relaxed: the caller already holds a reference (or the registry
     * guarantees one), so the object cannot be freed concurrently; the
     * increment itself needs no ordering. */
    mproc__fetch_add(&t->refs, 1, __ATOMIC_RELAXED);
}

static void ref_put(mproc_thread *t)
{
    /* acq_rel: our accesses to *t happen before the free (release), and
     * the freeing thread sees every other holder's accesses (acquire). */
    if (mproc__fetch_sub(&t->refs, 1, __ATOMIC_ACQ_REL) == 1)
        handle_free(t);
}

/* Unlink a live thread and publish its end: state DONE, then `done`.
 * Called by the thread itself (USER, DUMMY) or, in a fork child, for
 * threads that did not survive. The caller holds a reference. */
static void mark_done(mproc_thread *t, bool have_reg_lock)
{
    if (!have_reg_lock)
        reg_lock_acquire();
    reg_unlink(t);
    mproc__store_release(&t->state, TS_DONE);
    if (!have_reg_lock)
        reg_lock_release();
    /* After the unlink: a joiner woken here never finds t in the registry,
     * so the exit-time joiner cannot pick the same thread twice. */
    must(mproc_event_set(&t->done), "event set");
}

/* Wait for the OS thread to be gone and release it, once; see "Joining".
 * Needs the caller to hold a reference and `done` to be set. */
static void reap(mproc_thread *t)
{
    /* A thread created by another process (we are a fork child) does not
     * exist here; its join_lock may even be held by a vanished thread. */
    if (t->pid != getpid())
        return;
    must(mproc_lock_acquire(&t->join_lock, -1), "join lock");
    if (t->os_state == OS_JOINABLE) {
        /* The thread set `done` and is finishing its trampoline: this
         * wait is short (unless a user TLS destructor blocks). */
        must(pthread_join(t->pthread, NULL), "pthread_join");
        t->os_state = OS_REAPED;
    }
    must(mproc_lock_release(&t->join_lock), "join unlock");
}

/* ---- fork handlers --------------------------------------------------- */

static void atfork_prepare(void)
{
    reg_lock_acquire();
    must(mproc_lock_acquire(&hook_lock, -1), "hook lock");
}

static void atfork_parent(void)
{
    must(mproc_lock_release(&hook_lock), "hook unlock");
    reg_lock_release();
}

/* In the child only the forking thread exists; see the design notes. */
static void atfork_child(void)
{
    mproc_thread *self = tls_self ? tls_self : &main_storage;
    /* Both locks are held by the parent's forking tid: start over. */
    must(mproc_lock_init(&reg_lock, 0), "lock init");
    must(mproc_lock_init(&hook_lock, 0), "lock init");
    while (reg.next != &reg) {
        mproc_thread *t = reg.next;
        reg_unlink(t);
        if (t != self)
            mark_done(t, true);
    }
    reg_link(self);
    mproc__store_relaxed(&self->tid, gettid());
    if (self->kind == TK_USER) {
        /* Its join_lock may be held by a parent thread that vanished. */
        must(mproc_lock_init(&self->join_lock, 0), "lock init");
        self->pid = getpid();
    }
    if (main_handle != self) {
        /* The forker is the child's main thread; keep its handle alive
         * even after its function returns (a leak of one handle). */
        if (self->kind != TK_MAIN)
            ref_get(self);
        main_handle = self;
    }
}

/* ---- one-time initialisation ---------------------------------------- */

static void dummy_exit(void *p);

static void init(void)
{
    must(mproc_lock_init(&reg_lock, 0), "lock init");
    must(mproc_lock_init(&hook_lock, 0), "lock init");
    reg.prev = reg.next = &reg;

    must(handle_init(&main_storage, TK_MAIN), "main handle");
    strcpy(main_storage.name, "MainThread");
    main_storage.state = TS_RUNNING;
    main_storage.tid = getpid();
    main_storage.pid = getpid();
    must(mproc_event_set(&main_storage.started), "event set");
    reg_link(&main_storage);
    main_handle = &main_storage;

    /* Failure (too many keys) only costs dummy handles: current() then
     * returns NULL in threads mproc did not start, as documented. */
    dummy_key_ok = pthread_key_create(&dummy_key, dummy_exit) == 0;
    /* Failure (ENOMEM) leaves forks without the child fix-up; nothing
     * better can be done from a once-routine. */
    (void)pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

static void ensure_init(void)
{
    must(pthread_once(&init_once, init), "pthread_once");
}

/* The caller's handle if it has one, without creating a dummy. */
static mproc_thread *self_or_null(void)
{
    if (tls_self)
        return tls_self;
    if (gettid() == getpid())
        return main_handle;
    return NULL;
}

/* ---- exit-time join -------------------------------------------------- */

/* The first registered non-daemon USER thread other than `self`, with a
 * reference taken, or NULL. */
static mproc_thread *next_to_join(mproc_thread *self)
{
    mproc_thread *found = NULL;
    reg_lock_acquire();
    for (mproc_thread *t = reg.next; t != &reg; t = t->next) {
        if (t->kind == TK_USER && !t->daemon && t != self) {
            ref_get(t); /* safe: a linked thread holds its own reference */
            found = t;
            break;
        }
    }
    reg_lock_release();
    return found;
}

static void join_at_exit(void)
{
    mproc_thread *self = self_or_null();
    mproc_thread *t;
    while ((t = next_to_join(self)) != NULL) {
        must(mproc_event_wait(&t->done, -1), "event wait");
        reap(t);
        ref_put(t);
    }
}

static void register_atexit(void)
{
    /* Failure (no slot left) means non-daemon threads are not waited for
     * at exit; start() cannot report it usefully, so it is ignored. */
    (void)atexit(join_at_exit);
}

/* ---- the thread ------------------------------------------------------ */

/* Snapshot of the current excepthook and its userdata. */
static void hook_get(mproc_thread_excepthook_fn *fn, void **userdata)
{
    must(mproc_lock_acquire(&hook_lock, -1), "hook lock");
    *fn = hook_fn;
    *userdata = hook_userdata;
    must(mproc_lock_release(&hook_lock), "hook unlock");
}

/* The default hook: one line on stderr, written in one stdio call under
 * the stream lock so lines from concurrent failures do not interleave. */
static void default_excepthook(const mproc_thread_failure *f, void *userdata)
{
    (void)userdata;
    char line[128 + MPROC_THREAD_NAME_MAX + MESSAGE_MAX];
    int n = snprintf(line, sizeof line,
                     "Exception in thread %s (native id %d): %s: %s%s%s\n",
                     f->name, (int)f->native_id, mproc_errname(f->code),
                     mproc_strerror(f->code), f->message[0] ? ": " : "",
                     f->message);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) /* cannot happen with the sizes above */
        line[sizeof line - 2] = '\n';
    flockfile(stderr);
    fputs(line, stderr);
    fflush(stderr);
    funlockfile(stderr);
}

/* Runs on the failing thread, before it unlinks (it is still alive). */
static void report_failure(mproc_thread *t, int code)
{
    char name[MPROC_THREAD_NAME_MAX + 1];
    reg_lock_acquire();
    memcpy(name, t->name, sizeof name);
    reg_lock_release();

    mproc_thread_failure f = {
        .thread = t,
        .name = name,
        .native_id = mproc__load_relaxed(&t->tid),
        .code = code,
        .message = tls_message,
    };
    mproc_thread_excepthook_fn fn;
    void *userdata;
    hook_get(&fn, &userdata);
    if (fn == NULL)
        fn = default_excepthook;
    fn(&f, userdata);
}

static void *trampoline(void *p)
{
    mproc_thread *t = p;
    tls_self = t;
    tls_message[0] = '\0';

    /* Register, record the tid and apply the OS name in one critical
     * section: a concurrent set_name either comes first (we apply its
     * name) or sees the tid and renames us itself. */
    pid_t tid = gettid();
    reg_lock_acquire();
    reg_link(t);
    mproc__store_relaxed(&t->tid, tid);
    set_os_name(tid, t->name);
    /* Release: is_alive/join readers that see RUNNING see the above. */
    mproc__store_release(&t->state, TS_RUNNING);
    reg_lock_release();
    must(mproc_event_set(&t->started), "event set");

    int rc = t->fn(t->arg);

    mproc__store_relaxed(&t->result, rc); /* published by `done` */
    if (rc < 0)
        report_failure(t, rc);
    mark_done(t, false);
    tls_self = NULL;
    ref_put(t); /* last touch of t: it may be freed here */
    return NULL;
}

/* Key destructor: a DUMMY thread is exiting. */
static void dummy_exit(void *p)
{
    mproc_thread *t = p;
    mark_done(t, false);
    if (tls_self == t)
        tls_self = NULL;
    ref_put(t);
}

/* Create, register and remember a DUMMY handle for the calling thread. */
static mproc_thread *dummy_create(void)
{
    if (!dummy_key_ok)
        return NULL;
    mproc_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (handle_init(t, TK_DUMMY) != 0) {
        free(t);
        return NULL;
    }
    t->daemon = true; /* as Python's _DummyThread */
    t->state = TS_RUNNING;
    t->tid = gettid();
    t->pid = getpid();
    default_name(t, "Dummy");
    must(mproc_event_set(&t->started), "event set");
    if (pthread_setspecific(dummy_key, t) != 0) {
        handle_free(t);
        return NULL;
    }
    reg_lock_acquire();
    reg_link(t);
    reg_lock_release();
    tls_self = t;
    return t;
}

/* ---- public API ------------------------------------------------------ */

int mproc_thread_create(mproc_thread **out, const mproc_thread_opts *opts)
{
    if (out == NULL || opts == NULL || opts->fn == NULL)
        return -EINVAL;
    ensure_init();
    mproc_thread *t = calloc(1, sizeof *t);
    if (t == NULL)
        return -ENOMEM;
    int rc = handle_init(t, TK_USER);
    if (rc != 0) {
        free(t);
        return rc;
    }
    t->fn = opts->fn;
    t->arg = opts->arg;
    t->daemon = opts->daemon;
    t->stack_size = opts->stack_size;
    if (opts->name)
        copy_name(t, opts->name);
    else
        default_name(t, "Thread");
    *out = t;
    return 0;
}

/* Build the pthread attributes for t. Returns 0 or -errno. */
static int make_attr(const mproc_thread *t, pthread_attr_t *attr)
{
    int rc = pthread_attr_init(attr);
    if (rc != 0)
        return -rc;
    if (t->stack_size == 0)
        return 0;
    /* Round up to the system minimum and to whole pages, rather than
     * fail on a size some libcs reject. */
    size_t size = t->stack_size, page = (size_t)sysconf(_SC_PAGESIZE);
    if (size < (size_t)PTHREAD_STACK_MIN)
        size = (size_t)PTHREAD_STACK_MIN;
    if (size > SIZE_MAX - page)
        size = SIZE_MAX - page;
    size = (size + page - 1) / page * page;
    rc = pthread_attr_setstacksize(attr, size);
    if (rc != 0) {
        pthread_attr_destroy(attr);
        return -rc;
    }
    return 0;
}

int mproc_thread_start(mproc_thread *t)
{
    if (t == NULL)
        return -EINVAL;
    int expected = TS_NEW;
    /* Acquire: pairs with the release store of NEW after a failed start,
     * so a retry sees that attempt's cleanup. */
    if (!mproc__cas(&t->state, &expected, TS_STARTING, __ATOMIC_ACQUIRE))
        return -EBUSY;
    ensure_init();
    must(pthread_once(&atexit_once, register_atexit), "pthread_once");

    pthread_attr_t attr;
    int rc = make_attr(t, &attr);
    if (rc != 0) {
        mproc__store_release(&t->state, TS_NEW);
        return rc;
    }
    ref_get(t); /* the thread's reference, dropped by its trampoline */
    /* Before pthread_create, which orders it before everything the new
     * thread does: a joiner that sees RUNNING sees our pid. */
    t->pid = getpid();
    /* join_lock across create: see "Joining". */
    must(mproc_lock_acquire(&t->join_lock, -1), "join lock");
    rc = pthread_create(&t->pthread, &attr, trampoline, t);
    if (rc == 0)
        t->os_state = OS_JOINABLE;
    must(mproc_lock_release(&t->join_lock), "join unlock");
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        ref_put(t); /* cannot free: the caller's reference remains */
        mproc__store_release(&t->state, TS_NEW);
        return rc == EAGAIN ? -EAGAIN : -rc;
    }
    /* Wait until the thread is RUNNING, registered and named. */
    must(mproc_event_wait(&t->started, -1), "event wait");
    return 0;
}

int mproc_thread_join(mproc_thread *t, int64_t timeout_ms, int *result)
{
    if (t == NULL || timeout_ms < -1)
        return -EINVAL;
    int state = mproc__load_acquire(&t->state);
    if (state != TS_RUNNING && state != TS_DONE)
        return -EINVAL; /* never started (or start still in progress) */
    ensure_init();
    if (t == self_or_null())
        return -EDEADLK;
    /* MAIN and DUMMY threads end outside mproc's control (the process
     * exits, or the handle is freed as the thread ends): nothing to wait
     * for safely. */
    if (t->kind != TK_USER)
        return -EINVAL;
    int rc = mproc_event_wait(&t->done, timeout_ms);
    if (rc != 0)
        return rc;
    reap(t);
    if (result)
        *result = mproc__load_relaxed(&t->result); /* ordered by `done` */
    return 0;
}

void mproc_thread_destroy(mproc_thread *t)
{
    if (t == NULL || t->kind != TK_USER)
        return; /* MAIN and DUMMY handles belong to mproc */
    if (t->pid != getpid()) {
        ref_put(t); /* see reap(): not our thread to detach */
        return;
    }
    must(mproc_lock_acquire(&t->join_lock, -1), "join lock");
    if (t->os_state == OS_JOINABLE) {
        /* Nobody will join through this handle: let the OS release the
         * thread when it ends (the exit-time joiner waits on `done`). */
        must(pthread_detach(t->pthread), "pthread_detach");
        t->os_state = OS_REAPED;
    }
    must(mproc_lock_release(&t->join_lock), "join unlock");
    ref_put(t);
}

bool mproc_thread_is_alive(const mproc_thread *t)
{
    return t != NULL && mproc__load_acquire(&t->state) == TS_RUNNING;
}

pid_t mproc_thread_native_id(const mproc_thread *t)
{
    return t ? mproc__load_relaxed(&t->tid) : 0;
}

bool mproc_thread_daemon(const mproc_thread *t)
{
    return t != NULL && t->daemon;
}

int mproc_thread_name(const mproc_thread *t, char *buf, size_t cap)
{
    if (t == NULL || (buf == NULL && cap > 0))
        return -EINVAL;
    ensure_init();
    reg_lock_acquire();
    size_t len = strlen(t->name);
    if (cap > 0) {
        size_t n = len < cap - 1 ? len : cap - 1;
        memcpy(buf, t->name, n);
        buf[n] = '\0';
    }
    reg_lock_release();
    return (int)len;
}

int mproc_thread_set_name(mproc_thread *t, const char *name)
{
    if (t == NULL || name == NULL)
        return -EINVAL;
    ensure_init();
    reg_lock_acquire();
    copy_name(t, name);
    /* Linked means alive with a valid tid; a thread not yet linked picks
     * the new name up in its trampoline. */
    if (t->linked)
        set_os_name(mproc__load_relaxed(&t->tid), t->name);
    reg_lock_release();
    return 0;
}

mproc_thread *mproc_thread_current(void)
{
    if (tls_self)
        return tls_self;
    ensure_init();
    if (gettid() == getpid()) {
        tls_self = main_handle;
        return main_handle;
    }
    return dummy_create();
}

int mproc_thread_enumerate(mproc_thread_info *out, size_t cap)
{
    if (out == NULL && cap > 0)
        return -EINVAL;
    ensure_init();
    size_t count = 0;
    reg_lock_acquire();
    for (mproc_thread *t = reg.next; t != &reg; t = t->next, count++) {
        if (count >= cap)
            continue;
        mproc_thread_info *info = &out[count];
        memcpy(info->name, t->name, sizeof info->name);
        info->native_id = mproc__load_relaxed(&t->tid);
        info->daemon = t->daemon;
        info->alive = mproc__load_relaxed(&t->state) == TS_RUNNING;
        info->main = t == main_handle;
    }
    reg_lock_release();
    return count > INT_MAX ? INT_MAX : (int)count;
}

int mproc_thread_active_count(void)
{
    return mproc_thread_enumerate(NULL, 0);
}

int mproc_thread_fail(int code, const char *fmt, ...)
{
    if (code >= 0 || fmt == NULL) {
        tls_message[0] = '\0';
        return code;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_message, sizeof tls_message, fmt, ap);
    va_end(ap);
    return code;
}

void mproc_thread_set_excepthook(mproc_thread_excepthook_fn hook,
                                 void *userdata)
{
    ensure_init();
    must(mproc_lock_acquire(&hook_lock, -1), "hook lock");
    hook_fn = hook;
    hook_userdata = hook ? userdata : NULL;
    must(mproc_lock_release(&hook_lock), "hook unlock");
}
