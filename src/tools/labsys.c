/*
 * tools/labsys.c -- what the labs need from Linux beyond mproc: loopback
 * TCP sockets (the servers and clients of `lab io-vs-cpu` and `lab
 * c10k`), figures of /proc/self/status, the open-files limit, and a
 * calibrated arithmetic loop (the CPU-bound work of several labs).
 * Declared in lab.h. Every function here is safe to call from any thread
 * (they share no state); the socket calls never raise SIGPIPE.
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

int mproc__tcp_listen(uint16_t *port, bool nonblocking)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = loopback(0);
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

int mproc__tcp_connect(uint16_t port, int64_t timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000 };
    struct sockaddr_in a = loopback(port);
    int rc = 0;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
        (timeout_ms > 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
                            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)))
        rc = -errno;
    while (rc == 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        if (errno != EINTR)
            rc = -errno;
    if (rc != 0) {
        close(fd);
        return rc;
    }
    return fd;
}

int mproc__send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

ssize_t mproc__recv_some(int fd, void *buf, size_t cap)
{
    for (;;) {
        ssize_t n = recv(fd, buf, cap, 0);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
    }
}

long mproc__self_status(const char *field)
{
    FILE *f = fopen("/proc/self/status", "re");
    if (f == NULL)
        return -errno;
    char line[256];
    size_t n = strlen(field);
    long v = -ENOENT;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            char *end;
            v = strtol(line + n + 1, &end, 10);
            if (end == line + n + 1)
                v = -EPROTO;
            break;
        }
    }
    fclose(f);
    return v;
}

long mproc__self_threads_named(const char *prefix)
{
    DIR *d = opendir("/proc/self/task");
    if (d == NULL)
        return -errno;
    long count = 0;
    size_t n = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[64], comm[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%ld/comm", strtol(e->d_name, NULL, 10));
        FILE *f = fopen(path, "re");
        if (f == NULL)
            continue; /* it ended meanwhile */
        if (fgets(comm, sizeof comm, f) && strncmp(comm, prefix, n) == 0)
            count++;
        fclose(f);
    }
    closedir(d);
    return count;
}

long mproc__self_rss_kib(void)
{
    /* smaps_rollup walks the page tables: exact, where the counters of
     * /proc/self/status may lag behind threads that just touched pages. */
    FILE *f = fopen("/proc/self/smaps_rollup", "re");
    if (f != NULL) {
        char line[256];
        long v = -ENOENT;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "Rss: %ld kB", &v) == 1)
                break;
        fclose(f);
        if (v >= 0)
            return v;
    }
    return mproc__self_status("VmRSS");
}

long mproc__raise_nofile(long want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < want) {
        rlim_t soft = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max > want
                          ? (rlim_t)want
                          : rl.rlim_max;
        struct rlimit raised = { .rlim_cur = soft, .rlim_max = rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = soft;
    }
    return rl.rlim_cur == RLIM_INFINITY ? want : (long)rl.rlim_cur;
}

