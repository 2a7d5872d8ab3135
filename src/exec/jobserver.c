/*
 * exec/jobserver.c -- the GNU make jobserver client (jobserver.h).
 *
 * Finding the pool (mproc__jobserver_init, once per process).
 *  1. MAKEFLAGS names one: its last --jobserver-auth= or --jobserver-fds=
 *     option before a lone "--" (variable definitions follow that), as
 *     make reads it.
 *     - "R,W": pipe descriptors inherited from make. make marks them
 *       close-on-exec for recipes that are not recursive (no '+', no
 *       $(MAKE)) but leaves the option in MAKEFLAGS, so the numbers may be
 *       closed -- or reused by a pipe the program opened since, whose
 *       bytes we must not eat. So R and W count only if they were open
 *       ends of one pipe when the library was loaded (note_fds, run as a
 *       constructor) and still are that pipe. We read through a
 *       description of our own, opened via /proc/self/fd/R with
 *       O_NONBLOCK (setting O_NONBLOCK on make's shared description would
 *       make make's own blocking reads fail), and write through a copy of
 *       W (one byte into a pipe with room never blocks).
 *     - "fifo:PATH" (make 4.4): opened O_RDWR|O_NONBLOCK, a description
 *       of our own that reads and writes.
 *     Anything else, or a pool that cannot be opened, is ignored.
 *  2. Otherwise: a new pipe holding mproc_cpu_count() - 1 bytes (this
 *     process has the implicit token), exported for descendants as
 *         MAKEFLAGS=<old options> -jN --jobserver-auth=fifo:/proc/<pid>/fd/<r>
 *     A descendant however started (fork, forkserver, spawn, exec) opens
 *     that path and gets its own description of the same pipe, without
 *     inheriting a descriptor.
 *
 * When the creator ends, /proc/<pid>/fd/<r> goes with it. Descendants
 * that had joined keep the pipe alive and go on sharing it; one that
 * looks for it only later cannot open it and makes a pool of its own
 * (more jobs than CPUs then, never a hang). Should the pid be reused by
 * a process of the same user with a pipe at that number, the path would
 * lead to a stranger's pipe: MPROC_JOBSERVER_ID ("<dev>:<ino>:<path>"),
 * exported beside MAKEFLAGS, names the pipe the path stood for, and a
 * joiner that finds another pipe there treats the pool as gone.
 *
 * Tokens. A byte read is written back as it was (make 4.4 gives byte
 * values meanings); we keep a count of held bytes per value. A process
 * that dies holding bytes takes them with it and the pool stays smaller
 * for the rest of the run (make behaves the same, and warns at its end);
 * executors give every token back while their process lives, also at
 * exit, when they are shut down.
 *
 * make 4.3 and older know only "R,W": such a make started by a program
 * that made its own pool stops with "invalid --jobserver-auth string"
 * unless given a -j of its own. A program that runs one should drop
 * MAKEFLAGS from that make's environment.
 *
 * Threads and fork. One mutex guards the state, held across the single
 * read or write of a call. fork takes it in its prepare handler; in the
 * child the lock is new, the implicit token free and no byte held.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/jobserver.h"
#include "mproc/os.h"
#include "os/sys.h"
#include "sync/mutex.h"

#define ID_ENV "MPROC_JOBSERVER_ID"
#define AUTH_MAX 4096

static struct {
    uint32_t lock;       /* sync/mutex.h; guards everything here */
    bool ready;          /* init succeeded */
    bool atfork;         /* the fork handlers are registered */
    int rfd, wfd;        /* ours: read (O_NONBLOCK), write; maybe one fd */
    bool implicit_busy;  /* this process's own token is taken */
    unsigned held;       /* bytes read from the pool, not written back */
    unsigned count[256]; /* held bytes by value */
} js = { .rfd = -1, .wfd = -1 };

/* What note_fds saw: an inherited pipe's ends and identity (-1: none). */
static struct {
    int r, w;
    dev_t dev;
    ino_t ino;
} inherited = { -1, -1, 0, 0 };

/* ---- reading MAKEFLAGS ---------------------------------------------------- */

/* The next word of s (after blanks): its start, and its length in *len
 * (0 at the end). */
static const char *word(const char *s, size_t *len)
{
    s += strspn(s, " \t");
    *len = strcspn(s, " \t");
    return s;
}

/* Copy the value of the last jobserver option in mf into buf (n bytes).
 * False if there is none, or the last one does not fit. */
static bool auth_value(const char *mf, char *buf, size_t n)
{
    static const char *const opts[] = { "--jobserver-auth=", "--jobserver-fds=" };
    bool found = false;
    size_t len;
    for (const char *w = word(mf, &len); len > 0; w = word(w + len, &len)) {
        if (len == 2 && w[0] == '-' && w[1] == '-')
            break; /* variable definitions follow */
        for (int k = 0; k < 2; k++) {
            size_t ol = strlen(opts[k]);
            if (len >= ol && strncmp(w, opts[k], ol) == 0) {
                found = len - ol < n;
                if (found) {
                    memcpy(buf, w + ol, len - ol);
                    buf[len - ol] = '\0';
                }
            }
        }
    }
    return found;
}

/* "R,W" with two descriptor numbers. */
static bool parse_fds(const char *v, int *r, int *w)
{
    char *end;
    errno = 0;
    long a = strtol(v, &end, 10);
    if (end == v || *end != ',' || errno || a < 0 || a > INT_MAX)
        return false;
    const char *s = end + 1;
    long b = strtol(s, &end, 10);
    if (end == s || *end != '\0' || errno || b < 0 || b > INT_MAX)
        return false;
    *r = (int)a;
    *w = (int)b;
    return true;
}

/* Is fd an open descriptor of a pipe or fifo? Its identity in *st. */
static bool open_pipe(int fd, struct stat *st)
{
    return fcntl(fd, F_GETFD) != -1 && fstat(fd, st) == 0 && S_ISFIFO(st->st_mode);
}

void mproc__jobserver_note_fds(void)
{
    char v[AUTH_MAX];
    int r, w;
    struct stat sr, sw;
    const char *mf = getenv("MAKEFLAGS");
    bool ok = mf && auth_value(mf, v, sizeof v) && parse_fds(v, &r, &w) &&
              open_pipe(r, &sr) && open_pipe(w, &sw) && sr.st_dev == sw.st_dev &&
              sr.st_ino == sw.st_ino;
    mproc__mutex_lock(&js.lock);
    inherited.r = ok ? r : -1;
    inherited.w = ok ? w : -1;
    inherited.dev = ok ? sr.st_dev : 0;
    inherited.ino = ok ? sr.st_ino : 0;
    mproc__mutex_unlock(&js.lock);
}

/* Before main, so before the program can open files on R and W. */
MPROC__EARLY_INIT static void note_at_load(void)
{
    mproc__jobserver_note_fds();
}

/* ---- joining a pool (under js.lock) ----------------------------------------- */

static bool same_as_inherited(int fd)
{
    struct stat st;
    return open_pipe(fd, &st) && st.st_dev == inherited.dev && st.st_ino == inherited.ino;
}

static int join_pipe(int r, int w)
{
    if (r != inherited.r || w != inherited.w || !same_as_inherited(r) || !same_as_inherited(w))
        return -EBADF;
    char path[48];
    snprintf(path, sizeof path, "/proc/self/fd/%d", r);
    int rfd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (rfd < 0)
        return -errno;
    int wfd = fcntl(w, F_DUPFD_CLOEXEC, 0);
    if (wfd < 0 || !same_as_inherited(rfd)) {
        int e = wfd < 0 ? errno : EBADF;
        close(rfd);
        if (wfd >= 0)
            close(wfd);
        return -e;
    }
    js.rfd = rfd;
    js.wfd = wfd;
    return 0;
}

/* MPROC_JOBSERVER_ID = "<dev>:<ino>:<path>": if it speaks of this path,
 * the path must still lead to that pipe. */
static bool id_matches(const char *path, const struct stat *st)
{
    const char *id = getenv(ID_ENV);
    unsigned long long dev, ino;
    int n = 0;
    if (!id || sscanf(id, "%llu:%llu:%n", &dev, &ino, &n) != 2 || n == 0 ||
        strcmp(id + n, path) != 0)
        return true; /* it says nothing about this path */
    return dev == (unsigned long long)st->st_dev && ino == (unsigned long long)st->st_ino;
}

static int join_fifo(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) /* never open what is not a fifo */
        return -errno;
    if (!S_ISFIFO(st.st_mode))
        return -EINVAL;
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return -errno;
    if (fstat(fd, &st) != 0 || !S_ISFIFO(st.st_mode) || !id_matches(path, &st)) {
        close(fd);
        return -ESTALE;
    }
    js.rfd = js.wfd = fd;
    return 0;
}

/* ---- making one ----------------------------------------------------------- */

/* Put this process's pool in the environment: the old MAKEFLAGS options,
 * then ours (so they are the last), then the old variable definitions. */
static void export_pool(unsigned n, int rfd)
{
    struct stat st;
    char path[64], id[160];
    snprintf(path, sizeof path, "/proc/%d/fd/%d", (int)getpid(), rfd);
    const char *old = getenv("MAKEFLAGS");
    if (!old)
        old = "";
    size_t head = strlen(old), len;
    for (const char *w = word(old, &len); len > 0; w = word(w + len, &len))
        if (len == 2 && w[0] == '-' && w[1] == '-') {
            head = (size_t)(w - old);
            break;
        }
    const char *tail = old + head;
    while (head > 0 && (old[head - 1] == ' ' || old[head - 1] == '\t'))
        head--;
    size_t cap = head + strlen(tail) + strlen(path) + 64;
    char *mf = malloc(cap);
    if (!mf)
        return; /* a pool for this process only */
    snprintf(mf, cap, "%.*s%s-j%u --jobserver-auth=fifo:%s%s%s", (int)head, old,
             head ? " " : "", n, path, *tail ? " " : "", tail);
    /* Failures only keep descendants out of the pool. */
    if (fstat(rfd, &st) == 0) {
        snprintf(id, sizeof id, "%llu:%llu:%s", (unsigned long long)st.st_dev,
                 (unsigned long long)st.st_ino, path);
        setenv(ID_ENV, id, 1);
    }
    setenv("MAKEFLAGS", mf, 1);
    free(mf);
}

static int make_pool(void)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        return -errno;
    unsigned n = mproc_cpu_count(), put = 1; /* the implicit token */
    char bytes[64];
    memset(bytes, '+', sizeof bytes); /* make's token byte */
    while (put < n) {
        size_t k = n - put < sizeof bytes ? n - put : sizeof bytes;
        ssize_t wr = write(p[1], bytes, k);
        if (wr <= 0)
            break; /* a full pipe: a smaller pool */
        put += (unsigned)wr;
    }
    js.rfd = p[0];
    js.wfd = p[1];
    export_pool(put, p[0]);
    return 0;
}

/* ---- the calls ------------------------------------------------------------ */

static void fork_prepare(void)
{
    mproc__mutex_lock(&js.lock);
}

static void fork_parent(void)
{
    mproc__mutex_unlock(&js.lock);
}

/* The child runs the job its parent took a token for: it holds nothing,
 * and has its own implicit token. */
static void fork_child(void)
{
    js.implicit_busy = false;
    js.held = 0;
    memset(js.count, 0, sizeof js.count);
    js.lock = MPROC__MUTEX_INIT;
}

static int find_or_make(void)
{
    char v[AUTH_MAX];
    int r, w;
    const char *mf = getenv("MAKEFLAGS");
    if (mf && auth_value(mf, v, sizeof v)) {
        if (strncmp(v, "fifo:", 5) == 0 ? join_fifo(v + 5) == 0
                                         : parse_fds(v, &r, &w) && join_pipe(r, w) == 0)
            return 0;
    }
    return make_pool();
}

int mproc__jobserver_init(void)
{
    int rc = 0;
    mproc__mutex_lock(&js.lock);
    if (!js.ready) {
        if (!js.atfork && pthread_atfork(fork_prepare, fork_parent, fork_child) != 0)
            rc = -ENOMEM;
        else
            js.atfork = true;
        if (rc == 0 && (rc = find_or_make()) == 0)
            js.ready = true;
    }
    mproc__mutex_unlock(&js.lock);
    return rc;
}

int mproc__jobserver_try_acquire(void)
{
    int rc;
    unsigned char b;
    mproc__mutex_lock(&js.lock);
    if (!js.ready) {
        rc = -EINVAL;
    } else if (!js.implicit_busy) {
        js.implicit_busy = true;
        rc = 1;
    } else {
        ssize_t n;
        while ((n = read(js.rfd, &b, 1)) < 0 && errno == EINTR)
            ;
        if (n == 1) {
            js.count[b]++;
            js.held++;
            rc = 1;
        } else {
            rc = n == 0 ? -EIO : errno == EAGAIN ? 0 : -errno; /* 0: no writer left */
        }
    }
    mproc__mutex_unlock(&js.lock);
    return rc;
}

int mproc__jobserver_release(void)
{
    int rc = 0;
    mproc__mutex_lock(&js.lock);
    if (js.held > 0) {
        unsigned b = 0;
        while (js.count[b] == 0)
            b++;
        unsigned char c = (unsigned char)b;
        ssize_t n;
        while ((n = write(js.wfd, &c, 1)) < 0 && errno == EINTR)
            ;
        rc = n == 1 ? 0 : n < 0 ? -errno : -EIO;
        js.count[b]--; /* back in the pool, or lost */
        js.held--;
    } else if (js.implicit_busy) {
        js.implicit_busy = false;
    } else {
        rc = -EINVAL;
    }
    mproc__mutex_unlock(&js.lock);
    return rc;
}

int mproc__jobserver_fd(void)
{
    mproc__mutex_lock(&js.lock);
    int fd = js.ready ? js.rfd : -1;
    mproc__mutex_unlock(&js.lock);
    return fd;
}
