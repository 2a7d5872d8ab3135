/*
 * ipc/shm.c -- shared memory segments, anonymous and named, and the
 * tracker that unlinks a process tree's named segments when the tree
 * ends. See the section in mproc/ipc.h.
 *
 * Handles are process-private (malloc'd): a segment is an fd and a
 * mapping, both of which fork() duplicates, so a child's copy of the
 * handle is valid as it stands.
 *
 * Creating a named segment whole. The file is made with O_TMPFILE in
 * /dev/shm (unnamed, so invisible), sized, and only then given its name
 * with linkat(), which fails with EEXIST when the name is taken -- the
 * O_EXCL of shm_open, without a window in which an attacher could see a
 * zero-sized segment, and without a window in which a crash leaves a
 * file nobody knows about: until linkat the file vanishes with its
 * descriptor. Where O_TMPFILE or /proc is missing, create falls back to
 * shm_open(O_CREAT | O_EXCL) and registers right after it (a crash in
 * between leaks that one segment).
 *
 * The tracker. The first tracked create of a process starts it:
 *
 *   P (creator) --fork--> T1: setsid(), fork, _exit  (P reaps T1 at once)
 *                          \--fork--> T2 = tracker, adopted by init
 *
 * P and T2 share a SOCK_SEQPACKET socket pair: T2 keeps one end and
 * closes every other descriptor; P keeps the other end (close-on-exec),
 * which every process later forked from P inherits -- that is what makes
 * the "tree". Members send fixed-size records on it ("add name dev ino"
 * before the name is linked, "remove name dev ino" after an unlink or a
 * failed create); a SEQPACKET send is one message, whole, even with many
 * members sending at once, and MSG_NOSIGNAL makes a dead tracker an
 * error instead of a SIGPIPE. When every member's end is closed --
 * exits, kills, execs alike -- T2's recv returns 0; it then unlinks each
 * recorded name that still refers to the recorded inode (dev, ino), so
 * a name that was never linked (crash before linkat) or was replaced by
 * someone else's segment is left alone, and exits.
 *
 * The tracker is a fork of a possibly multi-threaded process, so after
 * fork it only makes system calls (no malloc, no stdio, no locks): its
 * table of names grows with mmap/mremap. It blocks every signal (a
 * Ctrl-C or SIGTERM sent to the user's process group must not stop it
 * before it cleans up; its own session keeps it out of that group and
 * off the terminal anyway). Only SIGKILL stops it, and then the tree's
 * segments stay -- the one case this design cannot cover.
 *
 * Per-process state (the end of the socket, the tracker's pid) is
 * guarded by `g_mu`. A fork child inherits the state; if another thread
 * held g_mu at the moment of the fork, the child's copy would stay
 * locked, so an atfork handler re-initialises it in the child, where
 * only the forking thread exists.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ipc/shm_internal.h"
#include "mproc/ipc.h"
#include "os/fault.h"
#include "os/sys.h"

#define SHM_DIR "/dev/shm/"
#define DEFAULT_MODE 0600u

struct mproc_shm {
    void *addr;
    size_t size;
    int fd;
    dev_t dev; /* identity of the file: what tracker records carry */
    ino_t ino;
    char *name; /* NULL when anonymous; else points into the same block */
};

/* ---- names -------------------------------------------------------------- */

static bool name_ok(const char *name)
{
    if (!name)
        return false;
    size_t n = strnlen(name, MPROC_SHM_NAME_MAX + 1);
    if (n == 0 || n > MPROC_SHM_NAME_MAX || strchr(name, '/'))
        return false;
    return strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

/* "/dev/shm/<name>" into buf (size >= sizeof SHM_DIR + NAME_MAX), with
 * plain copies only: the tracker calls it after fork. */
static void shm_path(char *buf, const char *name, size_t len)
{
    memcpy(buf, SHM_DIR, sizeof SHM_DIR - 1);
    memcpy(buf + sizeof SHM_DIR - 1, name, len);
    buf[sizeof SHM_DIR - 1 + len] = '\0';
}

/* ---- tracker records -------------------------------------------------- */

enum { REC_ADD = 1, REC_REMOVE = 2 };

struct rec {
    uint32_t op;
    uint32_t len; /* of name */
    uint64_t dev;
    uint64_t ino;
    char name[MPROC_SHM_NAME_MAX + 1];
};

/* One entry of the tracker's table: a name that the tree linked (or was
 * about to link) to the inode (dev, ino). */
struct entry {
    uint64_t dev;
    uint64_t ino;
    uint32_t len;
    char name[MPROC_SHM_NAME_MAX + 1];
};

/* ---- the tracker process (T2): system calls only ---------------------- */

static void close_all_but(int keep)
{
#ifdef SYS_close_range
    bool ok = true;
    if (keep > 0 && syscall(SYS_close_range, 0u, (unsigned)keep - 1, 0u) != 0)
        ok = false;
    if (ok && syscall(SYS_close_range, (unsigned)keep + 1, ~0u, 0u) == 0)
        return;
#endif
    /* Without close_range: every descriptor below the limit. */
    long max = sysconf(_SC_OPEN_MAX);
    if (max < 0 || max > (1L << 20))
        max = 1L << 20;
    for (long fd = 0; fd < max; fd++)
        if (fd != keep)
            close((int)fd);
}

static bool entry_is(const struct entry *e, const struct rec *r)
{
    return e->dev == r->dev && e->ino == r->ino && e->len == r->len &&
           memcmp(e->name, r->name, r->len) == 0;
}

static void tracker_cleanup(const struct entry *tab, size_t n)
{
    char path[sizeof SHM_DIR + MPROC_SHM_NAME_MAX];
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        shm_path(path, tab[i].name, tab[i].len);
        /* Only the very file the tree made: a name never linked (the
         * creator died first) or since replaced by another segment
         * refers to another inode, or to nothing. */
        if (lstat(path, &st) == 0 && (uint64_t)st.st_dev == tab[i].dev &&
            (uint64_t)st.st_ino == tab[i].ino)
            unlink(path);
    }
}

static __attribute__((noreturn)) void tracker_main(int sock)
{
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    close_all_but(sock);
    if (chdir("/") != 0) { /* not pinning the creator's directory; harmless if it fails */
    }
    prctl(PR_SET_NAME, "mproc-shm-gc", 0, 0, 0);

    pid_t me = getpid();
    if (send(sock, &me, sizeof me, MSG_NOSIGNAL) != (ssize_t)sizeof me)
        _exit(1);

    struct entry *tab = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        struct rec r;
        ssize_t got = recv(sock, &r, sizeof r, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) /* 0: every member is gone; <0: cannot go on either */
            break;
        if (got != (ssize_t)sizeof r || r.len == 0 || r.len > MPROC_SHM_NAME_MAX)
            continue;
        if (r.op == REC_ADD) {
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                void *p = tab ? mremap(tab, cap * sizeof *tab, ncap * sizeof *tab, MREMAP_MAYMOVE)
                              : mmap(NULL, ncap * sizeof *tab, PROT_READ | PROT_WRITE,
                                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (p == MAP_FAILED) /* out of memory: this name stays untracked */
                    continue;
                tab = p;
                cap = ncap;
            }
            tab[n].dev = r.dev;
            tab[n].ino = r.ino;
            tab[n].len = r.len;
            memcpy(tab[n].name, r.name, r.len);
            n++;
        } else if (r.op == REC_REMOVE) {
            for (size_t i = 0; i < n; i++) {
                if (entry_is(&tab[i], &r)) {
                    tab[i] = tab[--n];
                    break;
                }
            }
        }
    }
    tracker_cleanup(tab, n);
    _exit(0);
}

/* ---- the members' side ---------------------------------------------- */

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_sock = -1;      /* our end, or -1 */
static dev_t g_sock_dev;     /* its identity, to notice it was closed */
static ino_t g_sock_ino;
static pid_t g_tracker;

static void atfork_child(void)
{
    /* Only the forking thread exists here; a copy of g_mu locked by
     * another thread of the parent would never be unlocked. */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    memcpy(&g_mu, &fresh, sizeof fresh);
}

static void setup_once(void)
{
    (void)pthread_atfork(NULL, NULL, atfork_child);
}

/* Is g_sock still the socket we opened? A member may have closed it (and
 * the number may now be another file). Called with g_mu held. */
static bool sock_valid(void)
{
    struct stat st;
    return g_sock >= 0 && fstat(g_sock, &st) == 0 && st.st_dev == g_sock_dev &&
           st.st_ino == g_sock_ino;
}

/* Start a tracker for this process (and the processes it forks from now
 * on). Called with g_mu held. Returns 0 or -errno. */
static int tracker_start(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    pid_t t1 = mproc__sys()->fork();
    if (t1 < 0) {
        int rc = (int)t1;
        close(sv[0]);
        close(sv[1]);
        return rc == -ENOMEM ? -EAGAIN : rc;
    }
    if (t1 == 0) {
        /* T1: leave the user's session and process group, then leave
         * T2 to init, so nobody of the user's has a child to reap. */
        setsid();
        pid_t t2 = fork();
        if (t2 < 0)
            _exit(1);
        if (t2 == 0)
            tracker_main(sv[1]);
        _exit(0);
    }
    close(sv[1]);
    int st = 0;
    pid_t w;
    while ((w = waitpid(t1, &st, 0)) < 0 && errno == EINTR)
        ;
    /* ECHILD: someone else reaped T1 (SIGCHLD ignored, a waitpid(-1) of
     * the program's); the hello below still tells whether T2 runs. */
    if (w == t1 && !(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
        close(sv[0]);
        return -EAGAIN;
    }
    pid_t hello = 0;
    ssize_t got;
    while ((got = recv(sv[0], &hello, sizeof hello, 0)) < 0 && errno == EINTR)
        ;
    if (got != (ssize_t)sizeof hello) { /* T2 died before it said hello */
        close(sv[0]);
        return -EAGAIN;
    }
    struct stat sst;
    if (fstat(sv[0], &sst) != 0) {
        int rc = -errno;
        close(sv[0]);
        return rc;
    }
    g_sock = sv[0];
    g_sock_dev = sst.st_dev;
    g_sock_ino = sst.st_ino;
    g_tracker = hello;
    return 0;
}

static int send_rec(const struct rec *r)
{
    ssize_t n;
    while ((n = send(g_sock, r, sizeof *r, MSG_NOSIGNAL)) < 0 && errno == EINTR)
        ;
    return n == (ssize_t)sizeof *r ? 0 : n < 0 ? -errno : -EIO;
}

/* Tell this tree's tracker about `name` (op REC_ADD starts a tracker if
 * there is none; REC_REMOVE never does). Returns 0 or -errno. */
static int tracker_tell(uint32_t op, const char *name, dev_t dev, ino_t ino)
{
    struct rec r;
    memset(&r, 0, sizeof r);
    r.op = op;
    r.len = (uint32_t)strlen(name);
    r.dev = (uint64_t)dev;
    r.ino = (uint64_t)ino;
    memcpy(r.name, name, r.len);

    pthread_once(&g_once, setup_once);
    pthread_mutex_lock(&g_mu);
    int rc = 0;
    if (!sock_valid()) {
        g_sock = -1; /* lost; not ours to close */
        g_tracker = 0;
        rc = op == REC_ADD ? tracker_start() : 0;
        if (op != REC_ADD || rc != 0) {
            pthread_mutex_unlock(&g_mu);
            return rc;
        }
    }
    rc = send_rec(&r);
    if (rc != 0 && op == REC_ADD) {
        /* The tracker is gone (killed): the tree's earlier names are
         * lost with it, but this one can still be tracked by a new one. */
        close(g_sock);
        g_sock = -1;
        g_tracker = 0;
        rc = tracker_start();
        if (rc == 0)
            rc = send_rec(&r);
    }
    pthread_mutex_unlock(&g_mu);
    return op == REC_ADD ? rc : 0;
}

pid_t mproc__shm_tracker_pid(void)
{
    pthread_once(&g_once, setup_once);
    pthread_mutex_lock(&g_mu);
    pid_t p = sock_valid() ? g_tracker : 0;
    pthread_mutex_unlock(&g_mu);
    return p;
}

/* ---- handles ---------------------------------------------------------- */

static int handle_new(mproc_shm **out, const char *name)
{
    size_t len = name ? strlen(name) + 1 : 0;
    mproc_shm *s = calloc(1, sizeof *s + len);
    if (!s)
        return -ENOMEM;
    s->fd = -1;
    if (name) {
        s->name = (char *)(s + 1);
        memcpy(s->name, name, len);
    }
    *out = s;
    return 0;
}

/* Map the whole of fd (size bytes) into s. */
static int map_into(mproc_shm *s, int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    s->addr = p;
    s->size = size;
    s->fd = fd;
    return 0;
}

static int size_of_fd(int fd, size_t *size, dev_t *dev, ino_t *ino)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_size <= 0 || (uint64_t)st.st_size > SIZE_MAX)
        return -EINVAL;
    *size = (size_t)st.st_size;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

static int grow(int fd, size_t size)
{
    if (size > (size_t)INT64_MAX)
        return -ENOMEM;
    int rc = ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
    return rc == -EFBIG ? -ENOMEM : rc;
}

static int create_anon(mproc_shm *s, size_t size)
{
    int fd = memfd_create("mproc-shm", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = grow(fd, size);
    if (rc == 0)
        rc = map_into(s, fd, size);
    if (rc != 0)
        close(fd);
    return rc;
}

/* Give the unnamed file fd the name `path`; fails with -EEXIST if taken. */
static int link_tmpfile(int fd, const char *path)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0 ? 0 : -errno;
}

/* The fallback: shm_open(O_EXCL), sized after it appeared. *fdp is the
 * descriptor; the name exists on success. */
static int create_plain(const char *name, size_t size, mode_t mode, bool track, int *fdp,
                        dev_t *dev, ino_t *ino)
{
    char slash[MPROC_SHM_NAME_MAX + 2];
    slash[0] = '/';
    memcpy(slash + 1, name, strlen(name) + 1);
    int fd = shm_open(slash, O_RDWR | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return -errno;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? 0 : -errno;
    if (rc == 0 && track)
        rc = tracker_tell(REC_ADD, name, st.st_dev, st.st_ino);
    if (rc == 0)
        rc = grow(fd, size);
    if (rc != 0) {
        shm_unlink(slash);
        if (track)
            tracker_tell(REC_REMOVE, name, st.st_dev, st.st_ino);
        close(fd);
        return rc;
    }
    *fdp = fd;
    *dev = st.st_dev;
    *ino = st.st_ino;
    return 0;
}

static int create_named(mproc_shm *s, size_t size, mode_t mode, bool track)
{
    char path[sizeof SHM_DIR + MPROC_SHM_NAME_MAX];
    shm_path(path, s->name, strlen(s->name));
    int fd = open(SHM_DIR, O_TMPFILE | O_RDWR | O_CLOEXEC, mode);
    struct stat st;
    int rc;
    bool linked = false;
    if (fd < 0) {
        rc = -errno;
        if (rc == -ENOMEM || rc == -EMFILE || rc == -ENFILE || rc == -EACCES)
            return rc;
        /* No O_TMPFILE here (old kernel, other file system). */
        rc = create_plain(s->name, size, mode, track, &fd, &st.st_dev, &st.st_ino);
        if (rc != 0)
            return rc;
        linked = true;
    } else {
        rc = grow(fd, size);
        if (rc == 0 && fstat(fd, &st) != 0)
            rc = -errno;
        /* Record first, link second: a crash in between leaves a record
         * whose inode never got the name, which the tracker ignores. */
        if (rc == 0 && track)
            rc = tracker_tell(REC_ADD, s->name, st.st_dev, st.st_ino);
        if (rc != 0) {
            close(fd);
            return rc;
        }
        MPROC__FAULT_POINT("shm.create.recorded");
        rc = link_tmpfile(fd, path);
        if (rc == -ENOENT || rc == -EPERM || rc == -EOPNOTSUPP || rc == -ENOSYS) {
            /* No /proc to link through: start over the plain way. */
            if (track)
                tracker_tell(REC_REMOVE, s->name, st.st_dev, st.st_ino);
            close(fd);
            rc = create_plain(s->name, size, mode, track, &fd, &st.st_dev, &st.st_ino);
            if (rc != 0)
                return rc;
        } else if (rc != 0) {
            if (track)
                tracker_tell(REC_REMOVE, s->name, st.st_dev, st.st_ino);
            close(fd);
            return rc;
        }
        linked = true;
    }
    MPROC__FAULT_POINT("shm.create.linked");
    rc = map_into(s, fd, size);
    if (rc != 0) {
        if (linked)
            unlink(path);
        if (track)
            tracker_tell(REC_REMOVE, s->name, st.st_dev, st.st_ino);
        close(fd);
        return rc;
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    return 0;
}

int mproc_shm_create(mproc_shm **out, const mproc_shm_opts *opts)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!opts || opts->size == 0 || (opts->flags & ~MPROC_SHM_KEEP) || (opts->mode & ~0777u))
        return -EINVAL;
    if (opts->name ? !name_ok(opts->name) : (opts->flags & MPROC_SHM_KEEP) != 0)
        return -EINVAL;
    mproc_shm *s;
    int rc = handle_new(&s, opts->name);
    if (rc != 0)
        return rc;
    if (opts->name)
        rc = create_named(s, opts->size, opts->mode ? (mode_t)opts->mode : DEFAULT_MODE,
                          !(opts->flags & MPROC_SHM_KEEP));
    else
        rc = create_anon(s, opts->size);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int attach_fd_owned(mproc_shm *s, int fd)
{
    size_t size = 0;
    int rc = size_of_fd(fd, &size, &s->dev, &s->ino);
    if (rc == 0)
        rc = map_into(s, fd, size);
    return rc;
}

int mproc_shm_attach(mproc_shm **out, const char *name)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!name_ok(name))
        return -EINVAL;
    char slash[MPROC_SHM_NAME_MAX + 2];
    slash[0] = '/';
    memcpy(slash + 1, name, strlen(name) + 1);
    mproc_shm *s;
    int rc = handle_new(&s, name);
    if (rc != 0)
        return rc;
    int fd = shm_open(slash, O_RDWR, 0); /* shm_open sets FD_CLOEXEC */
    rc = fd >= 0 ? attach_fd_owned(s, fd) : -errno;
    if (rc != 0) {
        if (fd >= 0)
            close(fd);
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int mproc_shm_attach_fd(mproc_shm **out, int fd)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (fd < 0)
        return -EBADF;
    mproc_shm *s;
    int rc = handle_new(&s, NULL);
    if (rc != 0)
        return rc;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    rc = dup >= 0 ? attach_fd_owned(s, dup) : -errno;
    if (rc != 0) {
        if (dup >= 0)
            close(dup);
        free(s);
        return rc == -EACCES || rc == -ENODEV ? -EINVAL : rc;
    }
    *out = s;
    return 0;
}

void *mproc_shm_addr(const mproc_shm *s)
{
    return s ? s->addr : NULL;
}

size_t mproc_shm_size(const mproc_shm *s)
{
    return s ? s->size : 0;
}

const char *mproc_shm_name(const mproc_shm *s)
{
    return s ? s->name : NULL;
}

int mproc_shm_fd(const mproc_shm *s)
{
    return s ? s->fd : -EINVAL;
}

int mproc_shm_unlink(mproc_shm *s)
{
    if (!s || !s->name)
        return -EINVAL;
    char path[sizeof SHM_DIR + MPROC_SHM_NAME_MAX];
    shm_path(path, s->name, strlen(s->name));
    struct stat st;
    /* Only our own file: if the name now belongs to another segment,
     * that one is not ours to remove. */
    if (lstat(path, &st) != 0)
        return -errno;
    if (st.st_dev != s->dev || st.st_ino != s->ino)
        return -ENOENT;
    if (unlink(path) != 0)
        return -errno;
    /* Forget it in this tree's tracker, if this process has one (the
     * record names the inode, so another tree's tracker, or a later
     * segment of the same name, is not affected). */
    tracker_tell(REC_REMOVE, s->name, s->dev, s->ino);
    return 0;
}

int mproc_shm_destroy(mproc_shm *s)
{
    if (!s)
        return 0;
    if (s->addr)
        munmap(s->addr, s->size);
    if (s->fd >= 0)
        close(s->fd);
    free(s);
    return 0;
}
