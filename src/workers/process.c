/*
 * workers/process.c -- child processes (Python's multiprocessing.Process):
 * start methods fork, forkserver and spawn; join, terminate, kill, exit
 * codes; daemon children; reaping.
 *
 * Waiting and signalling. A child started by fork or spawn is ours: we
 * hold a pidfd for it (pidfd_open right after fork; nobody else reaps it,
 * since mproc never waits for "any child"), poll it to wait and reap it
 * with waitid(P_PIDFD) -- so a recycled pid is never signalled or reaped.
 * A forkserver child is the server's: the server sends us its pidfd
 * (SCM_RIGHTS) for signals and waiting, and, once it has reaped the
 * child, its wait status over the child's own channel.
 *
 * Reaping. Every started process is in a registry until it is reaped.
 * join/is_alive reap their own; a destroyed handle whose child still
 * runs stays registered (detached) and is reaped, once it has ended, by
 * the next mproc_process_create, start or destroy, or by the exit
 * handler -- until then it is a zombie -- and by nobody else: mproc never
 * waits for a child it did not start, and runs no thread of its own to
 * reap (that thread would make MPROC_START_FORK refuse to fork).
 *
 * Daemon children watch the parent process through a pidfd of it (taken
 * in the child, then checked against getppid(), or passed by the parent
 * for forkserver children) from a small thread, and SIGKILL themselves
 * when it ends -- however it ends, and whichever of its threads started
 * them. At normal exit the parent terminates its daemon children and
 * joins the others, as Python does.
 *
 * Children end with _exit after flushing stdio (the parent flushes before
 * fork, so nothing buffered is written twice); atexit handlers of the
 * parent do not run in them.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc/workers.h"
#include "os/sys.h"
#include "sync/mutex.h"
#include "workers/ctx.h"
#include "workers/fnref.h"
#include "workers/process_internal.h"

#define NAME_MAX_LEN 63
#define SPAWN_ENV "MPROC_SPAWN"
#define SPAWN_MAGIC 0x6d707370u /* "mpsp" */
#define ACK_TIMEOUT_MS 30000
#define EXIT_TERM_GRACE_MS 1000

enum { P_NEW, P_STARTED, P_ENDED };

struct mproc_process {
    uint32_t lock;          /* sync/mutex.h: state, reaping */
    int state;
    mproc_task_fn fn;
    void *arg;
    size_t len;
    char name[NAME_MAX_LEN + 1];
    bool daemon;
    mproc_start_method start;
    unsigned flags;
    pid_t pid;
    int pidfd;              /* -1 until started */
    int status_fd;          /* forkserver: where the server sends the status */
    int exitcode;
    bool detached;          /* the handle was destroyed; reap and free */
    int xfds[MPROC__PROCESS_MAX_FDS]; /* handed to the child (not owned) */
    int nxfds;
    mproc_process *prev, *next; /* registry, while started and not reaped */
};

/* ---- the registry -------------------------------------------------------- */

static uint32_t reg_lock;
static mproc_process reg_head = { .prev = &reg_head, .next = &reg_head };
static unsigned name_counter;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* The fork server (see "forkserver" below). */
static uint32_t fs_lock;      /* one request at a time; guards the fields below */
static int fs_ctl = -1;       /* the control socket, requester's end */
static int fs_pidfd = -1;     /* the server */

static void reg_add(mproc_process *p)
{
    mproc__mutex_lock(&reg_lock);
    p->next = &reg_head;
    p->prev = reg_head.prev;
    reg_head.prev->next = p;
    reg_head.prev = p;
    mproc__mutex_unlock(&reg_lock);
}

/* Under reg_lock. */
static void reg_unlink(mproc_process *p)
{
    if (p->next) {
        p->prev->next = p->next;
        p->next->prev = p->prev;
        p->next = p->prev = NULL;
    }
}

/* ---- waiting and reaping --------------------------------------------------- */

static int status_to_exitcode(int code, int status)
{
    return code == CLD_EXITED ? status : -status;
}

/*
 * Has p ended? Wait up to `deadline` for it; on its end, reap it and set
 * p->exitcode and P_ENDED. Returns 0 (ended), -ETIMEDOUT. Under p->lock
 * only for the final step, so that two joiners do not both reap.
 */
static int wait_end(mproc_process *p, int64_t deadline)
{
    for (;;) {
        mproc__mutex_lock(&p->lock);
        int state = p->state;
        mproc__mutex_unlock(&p->lock);
        if (state == P_ENDED)
            return 0;
        int fd = p->start == MPROC_START_FORKSERVER ? p->status_fd : p->pidfd;
        int ms = -1;
        if (deadline != MPROC__FOREVER) {
            int64_t left = deadline - mproc__now();
            if (left <= 0)
                ms = 0;
            else
                ms = left / 1000000 > 100 ? 100 : (int)(left / 1000000) + 1;
        } else {
            ms = 100; /* look again: another thread may have reaped it */
        }
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, ms);
        if (n < 0 && errno != EINTR)
            return -errno;
        if (n > 0) {
            mproc__mutex_lock(&p->lock);
            if (p->state != P_ENDED) {
                if (p->start == MPROC_START_FORKSERVER) {
                    int st[2];
                    ssize_t r = read(p->status_fd, st, sizeof st);
                    /* EOF without a status: the server died before it could
                     * tell; the child was reparented and is reaped there. */
                    p->exitcode = r == (ssize_t)sizeof st ? status_to_exitcode(st[0], st[1])
                                                          : -SIGKILL;
                    p->state = P_ENDED;
                } else {
                    siginfo_t si;
                    memset(&si, 0, sizeof si);
                    if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) == 0 &&
                        si.si_pid != 0) {
                        p->exitcode = status_to_exitcode(si.si_code, si.si_status);
                        p->state = P_ENDED;
                    }
                }
            }
            state = p->state;
            mproc__mutex_unlock(&p->lock);
            if (state == P_ENDED) {
                mproc__mutex_lock(&reg_lock);
                reg_unlink(p);
                mproc__mutex_unlock(&reg_lock);
                return 0;
            }
        }
        if (deadline != MPROC__FOREVER && mproc__now() >= deadline)
            return -ETIMEDOUT;
    }
}

static void free_process(mproc_process *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->status_fd >= 0)
        close(p->status_fd);
    free(p->arg);
    free(p);
}

/* Reap detached processes that have ended (non-blocking). */
static void reap_detached(void)
{
    for (;;) {
        mproc_process *found = NULL;
        mproc__mutex_lock(&reg_lock);
        for (mproc_process *p = reg_head.next; p != &reg_head; p = p->next) {
            if (!p->detached)
                continue;
            int fd = p->start == MPROC_START_FORKSERVER ? p->status_fd : p->pidfd;
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            if (poll(&pfd, 1, 0) > 0) {
                found = p;
                break;
            }
        }
        mproc__mutex_unlock(&reg_lock);
        if (!found)
            return;
        wait_end(found, 0);
        free_process(found);
    }
}

/* ---- signals --------------------------------------------------------------- */

static int send_signal(mproc_process *p, int sig)
{
    if (!p)
        return -EINVAL;
    mproc__mutex_lock(&p->lock);
    int rc = 0;
    if (p->state == P_NEW)
        rc = -EINVAL;
    else if (p->state == P_STARTED && pidfd_send_signal(p->pidfd, sig, NULL, 0) != 0 &&
             errno != ESRCH)
        rc = -errno;
    mproc__mutex_unlock(&p->lock);
    return rc;
}

/* ---- at exit --------------------------------------------------------------- */

/* As Python at interpreter exit: daemon children are terminated, then
 * every child is joined. Detached children are waited for too (they are
 * ours to reap). */
static void stop_forkserver(void);

static void at_exit(void)
{
    mproc__mutex_lock(&reg_lock);
    for (mproc_process *p = reg_head.next; p != &reg_head; p = p->next)
        if (p->daemon && p->pidfd >= 0)
            pidfd_send_signal(p->pidfd, SIGTERM, NULL, 0);
    mproc__mutex_unlock(&reg_lock);
    int64_t grace = mproc__now() + (int64_t)EXIT_TERM_GRACE_MS * 1000000;
    for (;;) {
        mproc__mutex_lock(&reg_lock);
        mproc_process *p = reg_head.next == &reg_head ? NULL : reg_head.next;
        mproc__mutex_unlock(&reg_lock);
        if (!p)
            break;
        if (p->daemon && wait_end(p, grace) != 0) {
            pidfd_send_signal(p->pidfd, SIGKILL, NULL, 0);
            wait_end(p, MPROC__FOREVER);
        } else if (!p->daemon) {
            wait_end(p, MPROC__FOREVER);
        }
        mproc__mutex_lock(&reg_lock);
        reg_unlink(p); /* ended, or beyond reach: move on either way */
        mproc__mutex_unlock(&reg_lock);
        if (p->detached)
            free_process(p);
    }
    stop_forkserver();
}

/* The fork server ends when its control socket closes; reap it. */
static void stop_forkserver(void)
{
    mproc__mutex_lock(&fs_lock);
    if (fs_ctl >= 0) {
        close(fs_ctl);
        fs_ctl = -1;
        if (fs_pidfd >= 0) {
            siginfo_t si;
            waitid((idtype_t)P_PIDFD, (id_t)fs_pidfd, &si, WEXITED);
            close(fs_pidfd);
            fs_pidfd = -1;
        }
    }
    mproc__mutex_unlock(&fs_lock);
}

/* A forked child is not the parent of its parent's children. */
static void fork_prepare(void)
{
    mproc__mutex_lock(&reg_lock);
}

static void fork_parent(void)
{
    mproc__mutex_unlock(&reg_lock);
}

static void fork_child(void)
{
    /* The records belong to the parent; their memory is leaked here. */
    reg_head.next = reg_head.prev = &reg_head;
    reg_lock = MPROC__MUTEX_INIT;
    /* So does the fork server: a child starts its own if it needs one. */
    if (fs_ctl >= 0)
        close(fs_ctl);
    if (fs_pidfd >= 0)
        close(fs_pidfd);
    fs_ctl = fs_pidfd = -1;
    fs_lock = MPROC__MUTEX_INIT;
}

static void reg_init(void)
{
    atexit(at_exit);
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- the child side ------------------------------------------------------ */

struct child_run {
    mproc_task_fn fn;
    const void *arg;
    size_t len;
    const char *name;
    bool daemon;
    int parent_pidfd; /* daemon: the process to die with, or -1 */
};

/* In a child: the descriptors its parent handed it. */
static int child_fds[MPROC__PROCESS_MAX_FDS] = { -1, -1, -1, -1 };

int mproc__process_fd(int i)
{
    return i >= 0 && i < MPROC__PROCESS_MAX_FDS ? child_fds[i] : -1;
}

int mproc__process_wait_fd(const mproc_process *p)
{
    return p->start == MPROC_START_FORKSERVER ? p->status_fd : p->pidfd;
}

int mproc__process_set_fds(mproc_process *p, const int *fds, int n)
{
    if (!p || n < 0 || n > MPROC__PROCESS_MAX_FDS || (n > 0 && !fds) || p->state != P_NEW)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (fds[i] < 0)
            return -EBADF;
    memcpy(p->xfds, fds, (size_t)n * sizeof *fds);
    p->nxfds = n;
    return 0;
}

static char child_message[256];

static void *child_room(mproc_ctx *ctx, size_t len)
{
    /* Nobody receives a process's result: keep the latest in a buffer
     * that dies with the process. */
    static void *buf;
    static size_t cap;
    (void)ctx;
    if (len > cap || !buf) {
        void *b = realloc(buf, len ? len : 1);
        if (!b)
            return NULL;
        buf = b;
        cap = len;
    }
    return buf;
}

static void child_message_set(mproc_ctx *ctx, const char *fmt, va_list ap)
{
    (void)ctx;
    vsnprintf(child_message, sizeof child_message, fmt, ap);
}

static bool child_cancel_requested(const mproc_ctx *ctx)
{
    (void)ctx;
    return false;
}

static const struct mproc__ctx_ops child_ctx_ops = {
    .room = child_room,
    .message = child_message_set,
    .cancel_requested = child_cancel_requested,
};

static void *watch_parent(void *arg)
{
    int fd = (int)(intptr_t)arg;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
        ;
    kill(getpid(), SIGKILL);
    return NULL;
}

/* Run the task in the child and end it; never returns. */
static void child_main(const struct child_run *c)
{
    if (c->daemon) {
        pthread_t t;
        pthread_attr_t a;
        if (c->parent_pidfd < 0 || pthread_attr_init(&a) != 0)
            _exit(1);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&a, 64 * 1024);
        if (pthread_create(&t, &a, watch_parent, (void *)(intptr_t)c->parent_pidfd) != 0)
            _exit(1);
        pthread_attr_destroy(&a);
    }
    struct mproc_ctx ctx = { .ops = &child_ctx_ops };
    int rc = c->fn(c->arg, c->len, &ctx);
    int code = 0;
    if (rc < 0) {
        fflush(stdout);
        fprintf(stderr, "Process %s (pid %d): %s: %s%s%s\n", c->name, (int)getpid(),
                mproc_errname(rc), mproc_strerror(rc), child_message[0] ? ": " : "",
                child_message);
        code = 1;
    }
    fflush(NULL);
    _exit(code);
}

/* In a fork or spawn child: a pidfd of the parent whose pid is `ppid`,
 * or -1 if it is gone already. */
static int parent_pidfd(pid_t ppid)
{
    int fd = pidfd_open(ppid, 0);
    if (fd >= 0 && getppid() != ppid) { /* it died, and the pid may be reused */
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ---- fork -------------------------------------------------------------------- */

/* Threads in this process: procfs gives /proc/self/task a link count of
 * 2 plus the threads (one stat, where reading /proc/self/status took
 * about a fifth of a start+join). -1 if it cannot tell. */
static int thread_count(void)
{
    struct stat st;
    if (stat("/proc/self/task", &st) != 0 || st.st_nlink < 3)
        return -1;
    return (int)st.st_nlink - 2;
}

/* Threads of the program itself: ThreadSanitizer adds a background
 * thread of its own once the program has created any thread (so a count
 * of 2 there is the program's main thread alone, or main plus a thread
 * that already ended; a live program thread makes it 3). */
static int program_threads(void)
{
    int n = thread_count();
#if defined(__SANITIZE_THREAD__)
    if (n == 2)
        n = 1;
#endif
    return n;
}

static int start_fork(mproc_process *p)
{
    if (!(p->flags & MPROC_FORK_THREADS) && program_threads() != 1)
        return MPROC_ETHREADS;
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = mproc__sys()->fork();
    if (pid < 0)
        return (int)pid;
    if (pid == 0) {
        struct child_run c = { p->fn, p->arg, p->len, p->name, p->daemon, -1 };
        memcpy(child_fds, p->xfds, (size_t)p->nxfds * sizeof *p->xfds);
        if (p->daemon && (c.parent_pidfd = parent_pidfd(parent)) < 0)
            _exit(1);
        child_main(&c);
    }
    int fd = pidfd_open(pid, 0);
    if (fd < 0) {
        /* Only if someone else reaped our child (SIGCHLD ignored). */
        int e = errno;
        kill(pid, SIGKILL);
        return -e;
    }
    p->pid = pid;
    p->pidfd = fd;
    return 0;
}

/* ---- spawn ----------------------------------------------------------------- */

/* The request a spawned child reads before main(). The task is found by
 * its exported symbol name if it has one, else by a reference
 * (workers/fnref.h); the table of the parent's objects always comes
 * along, for the references the child may be handed later (a process
 * executor's tasks). */
struct spawn_hdr {
    uint32_t magic;
    uint32_t daemon;
    int32_t parent;     /* the parent's pid */
    uint32_t name_len;  /* bytes that follow, in this order: */
    uint32_t sym_len;   /* 0: find the task by `ref` */
    uint32_t table_len; /* (after the argument) */
    uint64_t arg_len;
    uint64_t ref;
    int32_t nfds;       /* descriptors handed over, kept open by number */
    int32_t fds[MPROC__PROCESS_MAX_FDS];
};

static int read_all(int fd, void *buf, size_t n)
{
    char *b = buf;
    while (n > 0) {
        ssize_t r = read(fd, b, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return r < 0 ? -errno : -EPIPE;
        b += r;
        n -= (size_t)r;
    }
    return 0;
}

/* The exported symbol name of fn, or NULL. */
static const char *symbol_of(mproc_task_fn fn)
{
    Dl_info info;
    void *addr;
    memcpy(&addr, &fn, sizeof addr);
    if (dladdr(addr, &info) == 0 || !info.dli_sname || info.dli_saddr != addr)
        return NULL;
    return info.dli_sname;
}

extern char **environ;

/* environ plus SPAWN_ENV=<req>,<ack>: a malloc'ed array whose last entry
 * (*var) is malloc'ed too. */
static char **spawn_env(int req, int ack, char **var)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **env = malloc((n + 2) * sizeof *env);
    *var = malloc(64);
    if (!env || !*var) {
        free(env);
        free(*var);
        *var = NULL;
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], SPAWN_ENV "=", sizeof SPAWN_ENV) != 0)
            env[k++] = environ[i];
    snprintf(*var, 64, SPAWN_ENV "=%d,%d", req, ack);
    env[k++] = *var;
    env[k] = NULL;
    return env;
}

static int send_all(int fd, const void *buf, size_t n)
{
    const char *b = buf;
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : -EPIPE;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Wait for the spawned child's answer: 0 (it found its task and runs),
 * MPROC_ENOSYMBOL, the exec error, or -ECHILD (it died first). */
static int spawn_answer(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int n;
    while ((n = poll(&pfd, 1, ACK_TIMEOUT_MS)) < 0 && errno == EINTR)
        ;
    if (n == 0)
        return -ETIMEDOUT;
    char a[2] = { 0, 0 };
    ssize_t r;
    while ((r = read(fd, a, sizeof a)) < 0 && errno == EINTR)
        ;
    if (r >= 1 && a[0] == 'O')
        return 0;
    if (r >= 1 && a[0] == 'S')
        return MPROC_ENOSYMBOL;
    if (r == 2 && a[0] == 'E')
        return -(int)(unsigned char)a[1];
    return -ECHILD;
}

static int start_spawn(mproc_process *p)
{
    const char *sym = symbol_of(p->fn);
    uint64_t ref = 0;
    const void *table;
    size_t table_len;
    void *addr;
    memcpy(&addr, &p->fn, sizeof addr);
    int rc = sym ? 0 : mproc__fnref_encode(addr, true, &ref, NULL, 0);
    if (rc == 0)
        rc = mproc__fnref_table(&table, &table_len);
    if (rc != 0)
        return rc;
    if (!sym)
        sym = "";
    int req[2], ack[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, req) != 0)
        return -errno;
    if (pipe2(ack, O_CLOEXEC) != 0) {
        int e = errno;
        close(req[0]);
        close(req[1]);
        return -e;
    }
    char *var = NULL;
    char **env = spawn_env(req[1], ack[1], &var);
    char *argv[] = { program_invocation_name, NULL };
    pid_t parent = getpid();
    pid_t pid = -ENOMEM;
    if (env) {
        fflush(NULL);
        pid = mproc__sys()->fork();
    }
    if (pid == 0) {
        /* Only async-signal-safe calls until exec. */
        fcntl(req[1], F_SETFD, 0);
        fcntl(ack[1], F_SETFD, 0);
        for (int i = 0; i < p->nxfds; i++)
            fcntl(p->xfds[i], F_SETFD, 0);
        execve("/proc/self/exe", argv, env);
        char e[2] = { 'E', (char)errno };
        ssize_t w = write(ack[1], e, sizeof e);
        (void)w;
        _exit(127);
    }
    free(env);
    free(var);
    close(req[1]);
    close(ack[1]);
    rc = pid < 0 ? (int)pid : 0;
    int fd = -1;
    if (rc == 0 && (fd = pidfd_open(pid, 0)) < 0) {
        rc = -errno;
        kill(pid, SIGKILL);
    }
    if (rc == 0) {
        struct spawn_hdr h = { SPAWN_MAGIC, p->daemon, (int32_t)parent,
                               (uint32_t)strlen(p->name), (uint32_t)strlen(sym),
                               (uint32_t)table_len, p->len, ref, p->nxfds, { -1, -1, -1, -1 } };
        memcpy(h.fds, p->xfds, (size_t)p->nxfds * sizeof *p->xfds);
        /* A child that died early makes these fail (no SIGPIPE); its
         * answer says why. */
        if (send_all(req[0], &h, sizeof h) == 0 && send_all(req[0], p->name, h.name_len) == 0 &&
            send_all(req[0], sym, h.sym_len) == 0 && send_all(req[0], p->arg, p->len) == 0)
            send_all(req[0], table, table_len);
        rc = spawn_answer(ack[0]);
    }
    close(req[0]);
    close(ack[0]);
    if (rc != 0 && fd >= 0) { /* reap the failed child */
        siginfo_t si;
        if (rc == -ETIMEDOUT)
            pidfd_send_signal(fd, SIGKILL, NULL, 0);
        waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED);
        close(fd);
        return rc;
    }
    if (rc != 0)
        return rc;
    p->pid = pid;
    p->pidfd = fd;
    return 0;
}

/* A spawned child: before main(), read the task, find it, run it. */
__attribute__((constructor)) static void spawn_entry(void)
{
    const char *v = getenv(SPAWN_ENV);
    int req, ack;
    if (!v || sscanf(v, "%d,%d", &req, &ack) != 2)
        return;
    unsetenv(SPAWN_ENV); /* not for this child's own children */
    fcntl(req, F_SETFD, FD_CLOEXEC);
    fcntl(ack, F_SETFD, FD_CLOEXEC);
    struct spawn_hdr h;
    char name[NAME_MAX_LEN + 1], sym[256];
    void *arg = NULL, *table = NULL;
    if (read_all(req, &h, sizeof h) != 0 || h.magic != SPAWN_MAGIC ||
        h.name_len > NAME_MAX_LEN || h.sym_len >= sizeof sym || h.nfds < 0 ||
        h.nfds > MPROC__PROCESS_MAX_FDS || h.table_len > MPROC__FNREF_TABLE_MAX ||
        read_all(req, name, h.name_len) != 0 || read_all(req, sym, h.sym_len) != 0)
        _exit(127);
    name[h.name_len] = '\0';
    sym[h.sym_len] = '\0';
    if (h.arg_len > 0 && (!(arg = malloc(h.arg_len)) || read_all(req, arg, h.arg_len) != 0))
        _exit(127);
    if (!(table = malloc(h.table_len ? h.table_len : 1)) ||
        read_all(req, table, h.table_len) != 0 || mproc__fnref_adopt(table, h.table_len) != 0)
        _exit(127);
    free(table);
    close(req);
    void *addr = NULL;
    if (h.sym_len > 0)
        addr = dlsym(RTLD_DEFAULT, sym);
    else if (mproc__fnref_decode(h.ref, true, &addr, NULL, 0) != 0)
        addr = NULL;
    char answer = addr ? 'O' : 'S';
    ssize_t w = write(ack, &answer, 1);
    (void)w;
    close(ack);
    if (!addr)
        _exit(127);
    struct child_run c = { NULL, arg, h.arg_len, name, h.daemon != 0, -1 };
    memcpy(&c.fn, &addr, sizeof addr);
    for (int i = 0; i < h.nfds; i++) { /* ours now: not for our own execs */
        child_fds[i] = h.fds[i];
        fcntl(h.fds[i], F_SETFD, FD_CLOEXEC);
    }
    if (c.daemon && (c.parent_pidfd = parent_pidfd((pid_t)h.parent)) < 0)
        _exit(1);
    child_main(&c);
}

/* ---- forkserver --------------------------------------------------------------- */

/*
 * The server is forked on first use, and serves start requests over a
 * stream socket: a header and the name and argument bytes, with two
 * descriptors attached (SCM_RIGHTS): the server's end of a socket pair
 * for this child, and a pidfd of the requester (for daemon children).
 * It forks the child, answers on the child's socket with the pid and a
 * pidfd of the child, and when the child ends, reaps it and sends its
 * status (code, status) there. It exits when the requester's end of the
 * control socket closes, i.e. when the requester ends.
 */
struct fs_hdr {
    uint64_t fn;       /* the task's address (the same image) */
    uint64_t arg_len;
    uint32_t name_len;
    uint32_t daemon;
    uint32_t nfds;     /* descriptors for the child, after the two */
    uint32_t pad;
};

#define FS_FDS (2 + MPROC__PROCESS_MAX_FDS)


static int send_fds(int sock, const void *buf, size_t len, const int *fds, int nfds)
{
    char cbuf[CMSG_SPACE(FS_FDS * sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { (void *)buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (nfds > 0) {
        m.msg_control = cbuf;
        m.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
    }
    ssize_t w;
    while ((w = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    if (w < 0)
        return -errno;
    return (size_t)w == len ? 0 : send_all(sock, (const char *)buf + w, len - (size_t)w);
}

/* Receive exactly len bytes; up to `max` descriptors that came with them
 * go to fds (the rest -1). */
static int recv_fds(int sock, void *buf, size_t len, int *fds, int max)
{
    char cbuf[CMSG_SPACE(FS_FDS * sizeof(int))];
    struct iovec iov = { buf, len };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                        .msg_controllen = sizeof cbuf };
    for (int i = 0; i < max; i++)
        fds[i] = -1;
    ssize_t r;
    while ((r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
        ;
    if (r <= 0)
        return r < 0 ? -errno : -EPIPE;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < n; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + (size_t)i * sizeof(int), sizeof fd);
                if (i < max)
                    fds[i] = fd;
                else
                    close(fd);
            }
        }
    return (size_t)r == len ? 0 : read_all(sock, (char *)buf + r, len - (size_t)r);
}

#define FS_MAX_CHILDREN 4096

struct fs_child {
    int pidfd;
    int chan;
};

/* Fork one child for a request whose header is h; answer on chan. */
static void fs_fork_child(int ctl, const struct fs_hdr *h, const char *name, void *arg,
                          const int *fds, struct fs_child *kids, int *nkids)
{
    int chan = fds[0], parent_fd = fds[1];
    pid_t pid = fork();
    if (pid == 0) {
        close(ctl);
        for (int i = 0; i < *nkids; i++) {
            close(kids[i].pidfd);
            close(kids[i].chan);
        }
        close(chan);
        signal(SIGINT, SIG_DFL);
        struct child_run c = { NULL, arg, h->arg_len, name, h->daemon != 0, parent_fd };
        memcpy(&c.fn, &h->fn, sizeof c.fn);
        for (int i = 0; i < MPROC__PROCESS_MAX_FDS; i++)
            child_fds[i] = fds[2 + i];
        child_main(&c);
    }
    int fd = pid > 0 ? pidfd_open(pid, 0) : -1;
    int32_t reply = fd >= 0 ? (int32_t)pid : -(pid < 0 ? errno : ESRCH);
    send_fds(chan, &reply, sizeof reply, &fd, fd >= 0 ? 1 : 0);
    if (fd >= 0 && *nkids < FS_MAX_CHILDREN) {
        kids[(*nkids)++] = (struct fs_child){ fd, chan };
    } else {
        if (fd >= 0) { /* no room to watch it: wait here */
            siginfo_t si;
            waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED);
            close(fd);
        }
        close(chan);
    }
}

static void fs_reap(struct fs_child *k)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)k->pidfd, &si, WEXITED) == 0) {
        int st[2] = { si.si_code, si.si_status };
        send_all(k->chan, st, sizeof st);
    }
    close(k->pidfd);
    close(k->chan);
}

static void fs_serve(int ctl)
{
    static struct fs_child kids[FS_MAX_CHILDREN];
    static struct pollfd pfds[FS_MAX_CHILDREN + 1];
    int nkids = 0;
    signal(SIGINT, SIG_IGN); /* Ctrl-C is for the program, not us */
    for (;;) {
        pfds[0] = (struct pollfd){ .fd = ctl, .events = POLLIN };
        for (int i = 0; i < nkids; i++)
            pfds[i + 1] = (struct pollfd){ .fd = kids[i].pidfd, .events = POLLIN };
        if (poll(pfds, (nfds_t)nkids + 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            _exit(1);
        }
        for (int i = nkids - 1; i >= 0; i--)
            if (pfds[i + 1].revents) {
                fs_reap(&kids[i]);
                kids[i] = kids[--nkids];
            }
        if (!pfds[0].revents)
            continue;
        struct fs_hdr h;
        int fds[FS_FDS];
        if (recv_fds(ctl, &h, sizeof h, fds, FS_FDS) != 0)
            _exit(0); /* the requester is gone */
        char name[NAME_MAX_LEN + 1];
        void *arg = NULL;
        if (h.name_len > NAME_MAX_LEN || read_all(ctl, name, h.name_len) != 0 ||
            (h.arg_len > 0 && (!(arg = malloc(h.arg_len)) || read_all(ctl, arg, h.arg_len) != 0)))
            _exit(1);
        name[h.name_len] = '\0';
        if (fds[0] >= 0)
            fs_fork_child(ctl, &h, name, arg, fds, kids, &nkids);
        for (int i = 1; i < FS_FDS; i++) /* the child has its copies */
            if (fds[i] >= 0)
                close(fds[i]);
        free(arg);
    }
}

/* Under fs_lock. */
static int fs_start_locked(void)
{
    if (fs_ctl >= 0)
        return 0;
    int s[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) != 0)
        return -errno;
    fflush(NULL);
    pid_t pid = mproc__sys()->fork();
    if (pid == 0) {
        close(s[0]);
        fs_serve(s[1]);
    }
    close(s[1]);
    if (pid < 0) {
        close(s[0]);
        return (int)pid;
    }
    fs_pidfd = pidfd_open(pid, 0);
    fs_ctl = s[0];
    return 0;
}

int mproc_forkserver_start(void)
{
    mproc__mutex_lock(&fs_lock);
    int rc = fs_start_locked();
    mproc__mutex_unlock(&fs_lock);
    return rc;
}

static int start_forkserver(mproc_process *p)
{
    int chan[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) != 0)
        return -errno;
    int self = pidfd_open(getpid(), 0);
    if (self < 0) {
        int e = errno;
        close(chan[0]);
        close(chan[1]);
        return -e;
    }
    struct fs_hdr h = { 0, p->len, (uint32_t)strlen(p->name), p->daemon, (uint32_t)p->nxfds, 0 };
    memcpy(&h.fn, &p->fn, sizeof p->fn);
    int fds[FS_FDS] = { chan[1], self };
    memcpy(fds + 2, p->xfds, (size_t)p->nxfds * sizeof *p->xfds);
    mproc__mutex_lock(&fs_lock);
    int rc = fs_start_locked();
    if (rc == 0 && (rc = send_fds(fs_ctl, &h, sizeof h, fds, 2 + p->nxfds)) == 0 &&
        (rc = send_all(fs_ctl, p->name, h.name_len)) == 0)
        rc = send_all(fs_ctl, p->arg, p->len);
    mproc__mutex_unlock(&fs_lock);
    close(chan[1]);
    close(self);
    int32_t reply = 0;
    int pidfd = -1;
    if (rc == 0)
        rc = recv_fds(chan[0], &reply, sizeof reply, &pidfd, 1);
    if (rc == 0 && reply <= 0)
        rc = reply < 0 ? reply : -ECHILD;
    if (rc != 0) {
        if (pidfd >= 0)
            close(pidfd);
        close(chan[0]);
        return rc == -EPIPE ? -ECHILD : rc;
    }
    p->pid = (pid_t)reply;
    p->pidfd = pidfd;
    p->status_fd = chan[0];
    return 0;
}

/* ---- the public calls ------------------------------------------------------- */

int mproc_process_create(mproc_process **out, const mproc_process_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts || !opts->fn || (!opts->arg && opts->len > 0) ||
        (unsigned)opts->start > MPROC_START_SPAWN || (opts->flags & ~MPROC_FORK_THREADS))
        return -EINVAL;
    reap_detached();
    mproc_process *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    if (opts->len > 0 && !(p->arg = malloc(opts->len))) {
        free(p);
        return -ENOMEM;
    }
    if (opts->len > 0)
        memcpy(p->arg, opts->arg, opts->len);
    p->len = opts->len;
    p->fn = opts->fn;
    p->daemon = opts->daemon;
    p->start = opts->start == MPROC_START_DEFAULT ? MPROC_START_FORK : opts->start;
    p->flags = opts->flags;
    p->pidfd = p->status_fd = -1;
    p->lock = MPROC__MUTEX_INIT;
    if (opts->name)
        snprintf(p->name, sizeof p->name, "%s", opts->name);
    else
        snprintf(p->name, sizeof p->name, "Process-%u",
                 __atomic_add_fetch(&name_counter, 1, __ATOMIC_RELAXED));
    *out = p;
    return 0;
}

int mproc_process_start(mproc_process *p)
{
    if (!p)
        return -EINVAL;
    pthread_once(&reg_once, reg_init);
    reap_detached();
    mproc__mutex_lock(&p->lock);
    int rc = p->state == P_NEW ? 0 : -EINVAL;
    if (rc == 0) {
        switch (p->start) {
        case MPROC_START_FORKSERVER: rc = start_forkserver(p); break;
        case MPROC_START_SPAWN: rc = start_spawn(p); break;
        default: rc = start_fork(p); break;
        }
        if (rc == 0)
            p->state = P_STARTED;
    }
    mproc__mutex_unlock(&p->lock);
    if (rc == 0)
        reg_add(p);
    return rc;
}

int mproc_process_join(mproc_process *p, int64_t timeout_ms)
{
    if (!p)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    mproc__mutex_lock(&p->lock);
    int state = p->state;
    mproc__mutex_unlock(&p->lock);
    if (state == P_NEW)
        return -EINVAL;
    return wait_end(p, deadline);
}

bool mproc_process_is_alive(mproc_process *p)
{
    if (!p)
        return false;
    mproc__mutex_lock(&p->lock);
    int state = p->state;
    mproc__mutex_unlock(&p->lock);
    return state == P_STARTED && wait_end(p, 0) != 0;
}

int mproc_process_terminate(mproc_process *p)
{
    return send_signal(p, SIGTERM);
}

int mproc_process_kill(mproc_process *p)
{
    return send_signal(p, SIGKILL);
}

pid_t mproc_process_pid(const mproc_process *p)
{
    return p ? p->pid : 0;
}

int mproc_process_exitcode(const mproc_process *p, int *code)
{
    if (!p || !code)
        return -EINVAL;
    mproc__mutex_lock((uint32_t *)&p->lock);
    int rc = p->state == P_ENDED ? 0 : -EAGAIN;
    if (rc == 0)
        *code = p->exitcode;
    mproc__mutex_unlock((uint32_t *)&p->lock);
    return rc;
}

const char *mproc_process_name(const mproc_process *p)
{
    return p ? p->name : "";
}

void mproc_process_destroy(mproc_process *p)
{
    if (!p)
        return;
    mproc__mutex_lock(&reg_lock);
    bool registered = p->next != NULL;
    if (registered)
        p->detached = true; /* still running: reaped later */
    mproc__mutex_unlock(&reg_lock);
    if (!registered)
        free_process(p);
    reap_detached(); /* it, if it has ended already, and others that have */
}
