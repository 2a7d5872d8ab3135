/*
 * os/sys.c -- system call table, futexes, clock, deadlines, thread
 * identity and liveness (see sys.h).
 */
#include "os/sys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "os/atomic.h"

/* ---- the real calls --------------------------------------------------- */

static int64_t real_now_ns(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail with a valid pointer. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int real_futex_wait(uint32_t *addr, uint32_t val, int64_t deadline,
                           bool shared)
{
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout, so a
     * wait restarted after a spurious wake never stretches the deadline,
     * and the kernel never returns ETIMEDOUT before it. */
    int op = FUTEX_WAIT_BITSET | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    struct timespec ts, *tsp = NULL;
    if (deadline != MPROC__FOREVER) {
        if (deadline < 0)
            deadline = 0;
        ts.tv_sec = deadline / 1000000000;
        ts.tv_nsec = deadline % 1000000000;
        tsp = &ts;
    }
    long r = syscall(SYS_futex, addr, op, val, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
    return r == 0 ? 0 : -errno;
}

static int real_futex_wake(uint32_t *addr, int n, bool shared)
{
    int op = FUTEX_WAKE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    long r = syscall(SYS_futex, addr, op, n, NULL, NULL, 0);
    return r >= 0 ? (int)r : -errno;
}

static int real_futex_requeue(uint32_t *addr, int wake, uint32_t *addr2,
                              int requeue, uint32_t val, bool shared)
{
    int op = FUTEX_CMP_REQUEUE | (shared ? 0 : FUTEX_PRIVATE_FLAG);
    /* The kernel takes the requeue count in the timeout argument's slot. */
    long r = syscall(SYS_futex, addr, op, wake, (unsigned long)requeue, addr2, val);
    return r >= 0 ? (int)r : -errno;
}

static pid_t real_fork(void)
{
    pid_t p = fork();
    return p >= 0 ? p : -errno;
}

static int real_kill(pid_t pid, int sig)
{
    return kill(pid, sig) == 0 ? 0 : -errno;
}

const mproc__sysops mproc__sys_real = {
    .now_ns = real_now_ns,
    .futex_wait = real_futex_wait,
    .futex_wake = real_futex_wake,
    .futex_requeue = real_futex_requeue,
    .fork = real_fork,
    .kill = real_kill,
};

static const mproc__sysops *sys_current = &mproc__sys_real;

const mproc__sysops *mproc__sys(void)
{
    /* Relaxed: the table is immutable; only the pointer changes, and a
     * caller racing with a swap may use either table. */
    return mproc__load_relaxed(&sys_current);
}

const mproc__sysops *mproc__sys_set(const mproc__sysops *ops)
{
    return mproc__xchg(&sys_current, ops ? ops : &mproc__sys_real,
                       __ATOMIC_ACQ_REL);
}

/* ---- public clock helpers ------------------------------------------- */

int64_t mproc_now_ns(void)
{
    return mproc__now();
}

unsigned mproc_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}

int mproc_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t end_s = ts.tv_sec + ms / 1000;
    long end_ns = ts.tv_nsec + (long)(ms % 1000) * 1000000L;
    if (end_ns >= 1000000000L) {
        end_s++;
        end_ns -= 1000000000L;
    }
    ts.tv_sec = (time_t)end_s;
    ts.tv_nsec = end_ns;
    /* Absolute sleep: resuming after EINTR does not drift. */
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
    return 0;
}

int mproc__deadline(int64_t timeout_ms, int64_t *deadline)
{
    if (timeout_ms < -1)
        return -EINVAL;
    if (timeout_ms == -1) {
        *deadline = MPROC__FOREVER;
        return 0;
    }
    int64_t now = mproc__now();
    if (timeout_ms > (MPROC__FOREVER - now) / 1000000)
        *deadline = MPROC__FOREVER; /* centuries away: forever */
    else
        *deadline = now + timeout_ms * 1000000;
    return 0;
}

/* ---- thread identity -------------------------------------------------- */

/*
 * The kernel tid and start time are cached per thread. A child of fork
 * inherits the forking thread's cache, which is wrong there, and not
 * every fork runs pthread_atfork handlers (_Fork(), a raw clone), so the
 * cache is tied to a process *epoch* kept in a page marked
 * MADV_WIPEONFORK: the kernel zeroes that page in the child of any fork.
 * A thread's cache is valid while its epoch equals the page's. The first
 * thread of a new process to see 0 installs the next epoch with a CAS
 * (every thread computes the same value from `last_epoch`, ordinary
 * memory that the child inherits), so every older cache is invalid in
 * the child, the forking thread's included. Without MADV_WIPEONFORK
 * (Linux < 4.14) an atfork handler zeroes the word instead.
 */
uint32_t *mproc__epoch_word;
static uint32_t epoch_fallback;
static uint32_t last_epoch;
static pthread_once_t epoch_once = PTHREAD_ONCE_INIT;

_Thread_local pid_t mproc__cached_tid MPROC__TLS_IE;
_Thread_local uint32_t mproc__cached_epoch MPROC__TLS_IE;
static _Thread_local uint64_t cached_start MPROC__TLS_IE;
static _Thread_local bool cached_start_valid MPROC__TLS_IE;

static void zero_epoch_in_child(void)
{
    mproc__store_relaxed(mproc__epoch_word, 0);
}

static void epoch_init(void)
{
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page != MAP_FAILED && madvise(page, 4096, MADV_WIPEONFORK) == 0) {
        mproc__epoch_word = page;
        return;
    }
    if (page != MAP_FAILED)
        munmap(page, 4096);
    mproc__epoch_word = &epoch_fallback;
    if (pthread_atfork(NULL, NULL, zero_epoch_in_child) != 0) {
        fputs("mproc: cannot track forks (pthread_atfork failed)\n", stderr);
        abort();
    }
}

static uint32_t current_epoch(void)
{
    uint32_t e = mproc__load_acquire(mproc__epoch_word);
    if (e == 0) {
        uint32_t want = mproc__load_relaxed(&last_epoch) + 1;
        if (want == 0)
            want = 1;
        if (mproc__cas(mproc__epoch_word, &e, want, __ATOMIC_ACQ_REL))
            e = want;
        mproc__store_relaxed(&last_epoch, e);
    }
    return e;
}

pid_t mproc__tid_refresh(void)
{
    pthread_once(&epoch_once, epoch_init);
    mproc__cached_epoch = current_epoch();
    mproc__cached_tid = (pid_t)syscall(SYS_gettid);
    cached_start_valid = false;
    return mproc__cached_tid;
}

/* Parse state (field 3) and starttime (field 22) of a /proc stat line.
 * The comm field (2) may contain spaces and ')' so scan from the last
 * ')'. Returns 0 on success. */
static int parse_stat(const char *buf, char *state, uint64_t *start)
{
    const char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    *state = *p;
    /* fields 3..21 precede starttime: skip 19 spaces */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    *start = v;
    return 0;
}

/* Read /proc/<tid>/stat (or thread-self). Returns 0, -ENOENT if the task
 * is gone, another -errno if /proc cannot be read. */
static int read_task_stat(const char *path, char *state, uint64_t *start)
{
    char buf[1024];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ESRCH ? -ENOENT : -errno;
    ssize_t n;
    do
        n = read(fd, buf, sizeof buf - 1);
    while (n < 0 && errno == EINTR);
    int err = n < 0 ? errno : 0;
    close(fd);
    if (n < 0)
        return err == ESRCH ? -ENOENT : -err;
    buf[n] = '\0';
    return parse_stat(buf, state, start) == 0 ? 0 : -EIO;
}

uint64_t mproc__thread_start(void)
{
    (void)mproc__tid(); /* drops a cache inherited through fork */
    if (!cached_start_valid) {
        char state;
        uint64_t start = 0;
        if (read_task_stat("/proc/thread-self/stat", &state, &start) != 0)
            start = 0;
        cached_start = start;
        cached_start_valid = true;
    }
    return cached_start;
}

bool mproc__task_dead(pid_t tid, uint32_t start32)
{
    char path[64], state;
    uint64_t now_start;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
    int r = read_task_stat(path, &state, &now_start);
    if (r == -ENOENT)
        return true;
    if (r != 0) /* no /proc: existence is all we can learn */
        return kill(tid, 0) != 0 && errno == ESRCH;
    if (state == 'Z' || state == 'X' || state == 'x')
        return true;
    return start32 != 0 && (uint32_t)now_start != start32;
}
