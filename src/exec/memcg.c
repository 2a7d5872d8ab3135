/*
 * exec/memcg.c -- a memory cgroup per process worker (memcg.h).
 *
 * Everything goes through the caller's cgroup directory, opened once:
 * the workers' cgroups are made and removed relative to it, and their
 * files are read and written with *at() calls.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "exec/memcg.h"
#include "os/atomic.h"

static uint32_t pools; /* pools made in this process, for unique names */

/* Read the file `name` under dirfd into buf (NUL-terminated). Returns
 * its length or -errno. */
static long read_at(int dirfd, const char *name, char *buf, size_t n)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t k = read(fd, buf, n - 1);
    int err = errno;
    close(fd);
    if (k < 0)
        return -err;
    buf[k] = '\0';
    return (long)k;
}

/* Write `text` to the (existing) file `name` under dirfd. 0 or -errno. */
static int write_at(int dirfd, const char *name, const char *text)
{
    int fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = strlen(text);
    ssize_t k = write(fd, text, n);
    int err = errno;
    close(fd);
    return k == (ssize_t)n ? 0 : k < 0 ? -err : -EIO;
}

/* Is `word` one of the words of list (separated by any of seps)? */
static bool has_word(const char *list, const char *word, const char *seps)
{
    size_t n = strlen(word);
    for (const char *p = list; *p;) {
        size_t k = strcspn(p, seps);
        if (k == n && strncmp(p, word, n) == 0)
            return true;
        p += k;
        p += *p != '\0';
    }
    return false;
}

/* The mount point and root of the cgroup2 hierarchy (v2), or of the
 * cgroup v1 hierarchy that has the memory controller. 0 or -ENOTSUP. */
static int find_mount(bool v2, char *mnt, char *root, size_t n)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    if (!f)
        return -ENOTSUP;
    char line[1024];
    int rc = -ENOTSUP;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        char r[512], m[512], type[64], opts[512];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %511s %511s", r, m) != 2 ||
            sscanf(dash + 3, "%63s %*s %511s", type, opts) != 2)
            continue;
        bool match = v2 ? strcmp(type, "cgroup2") == 0
                        : strcmp(type, "cgroup") == 0 && has_word(opts, "memory", ",");
        if (match && strlen(m) < n && strlen(r) < n) {
            memcpy(mnt, m, strlen(m) + 1);
            memcpy(root, r, strlen(r) + 1);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* This process's cgroup path in that hierarchy (from /proc/self/cgroup:
 * "0::PATH" for v2, "N:...memory...:PATH" for v1). 0 or -ENOTSUP. */
static int own_path(bool v2, char *path, size_t n)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return -ENOTSUP;
    char line[1024];
    int rc = -ENOTSUP;
    while (rc != 0 && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        bool match = v2 ? strcmp(line, "0:") == 0 && c1[1] == '\0'
                        : has_word(c1 + 1, "memory", ",");
        char *p = c2 + 1;
        p[strcspn(p, "\n")] = '\0';
        if (match && strlen(p) < n) {
            memcpy(path, p, strlen(p) + 1);
            rc = 0;
        }
    }
    fclose(f);
    return rc;
}

/* Open the caller's cgroup directory in hierarchy v2 or v1 into cg. */
static int open_own(struct mproc__memcg *cg, bool v2)
{
    char mnt[MPROC__MEMCG_PATH], root[MPROC__MEMCG_PATH], path[MPROC__MEMCG_PATH];
    int rc = find_mount(v2, mnt, root, sizeof mnt);
    if (rc == 0)
        rc = own_path(v2, path, sizeof path);
    if (rc != 0)
        return rc;
    /* The mount shows the hierarchy from `root` down. */
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (strncmp(path, root, rl) != 0 || (path[rl] != '/' && path[rl] != '\0'))
        return -ENOTSUP;
    int k = snprintf(cg->dir, sizeof cg->dir, "%s%s", mnt, path + rl);
    if (k < 0 || (size_t)k >= sizeof cg->dir)
        return -ENAMETOOLONG;
    cg->dirfd = open(cg->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return cg->dirfd >= 0 ? 0 : -errno;
}

/* cgroup v2: may the caller's cgroup give its children the memory
 * controller? Turns it on for them if it can. */
static int v2_hand_down(int dirfd)
{
    char buf[512];
    long n = read_at(dirfd, "cgroup.controllers", buf, sizeof buf);
    if (n < 0)
        return (int)n;
    if (!has_word(buf, "memory", " \n"))
        return -ENOTSUP;
    n = read_at(dirfd, "cgroup.subtree_control", buf, sizeof buf);
    if (n < 0)
        return (int)n;
    return has_word(buf, "memory", " \n") ? 0 : write_at(dirfd, "cgroup.subtree_control", "+memory");
}

static void worker_name(const struct mproc__memcg *cg, int index, char *buf, size_t n)
{
    snprintf(buf, n, "mproc-%d-%u-%d", (int)getpid(), cg->pool, index);
}

/* Remove cgroups left by pools of processes that no longer exist. */
static void sweep(int dirfd)
{
    int fd = dup(dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int pid;
        if (sscanf(e->d_name, "mproc-%d-", &pid) == 1 && pid > 0 && pid != getpid() &&
            kill(pid, 0) != 0 && errno == ESRCH)
            (void)unlinkat(dirfd, e->d_name, AT_REMOVEDIR); /* fails if in use */
    }
    closedir(d);
}

/* Give the cgroup `name` its limit (and no swap beyond it). */
static int set_limit(const struct mproc__memcg *cg, const char *name)
{
    char file[96], val[32];
    snprintf(val, sizeof val, "%zu", cg->limit);
    bool v2 = cg->kind == MPROC_MEMLIMIT_CGROUP2;
    snprintf(file, sizeof file, "%s/%s", name, v2 ? "memory.max" : "memory.limit_in_bytes");
    int rc = write_at(cg->dirfd, file, val);
    if (rc != 0)
        return rc;
    /* Swapping instead of stopping would hide the limit; where there is
     * no swap accounting these files are missing, which is fine. */
    snprintf(file, sizeof file, "%s/%s", name, v2 ? "memory.swap.max" : "memory.memsw.limit_in_bytes");
    (void)write_at(cg->dirfd, file, v2 ? "0" : val);
    return 0;
}

/* Make the cgroup `name` if it is not there, with the limit set. */
static int make_worker_cgroup(const struct mproc__memcg *cg, const char *name)
{
    if (mkdirat(cg->dirfd, name, 0755) != 0 && errno != EEXIST)
        return -errno;
    return set_limit(cg, name);
}

int mproc__memcg_open(struct mproc__memcg *cg, mproc_memory_limit_kind want, size_t limit)
{
    static const mproc_memory_limit_kind order[] = { MPROC_MEMLIMIT_CGROUP2,
                                                     MPROC_MEMLIMIT_CGROUP1 };
    int rc = -ENOTSUP;
    for (int i = 0; i < 2; i++) {
        mproc_memory_limit_kind k = order[i];
        if (want != MPROC_MEMLIMIT_AUTO && want != k)
            continue;
        *cg = (struct mproc__memcg){ .kind = k, .dirfd = -1, .limit = limit };
        bool v2 = k == MPROC_MEMLIMIT_CGROUP2;
        rc = open_own(cg, v2);
        if (rc == 0 && v2)
            rc = v2_hand_down(cg->dirfd);
        if (rc == 0) {
            /* Worker 0's cgroup, made now: this proves we may. */
            char name[64];
            cg->pool = mproc__fetch_add(&pools, 1, __ATOMIC_RELAXED);
            worker_name(cg, 0, name, sizeof name);
            sweep(cg->dirfd);
            rc = make_worker_cgroup(cg, name);
            if (rc != 0)
                (void)unlinkat(cg->dirfd, name, AT_REMOVEDIR);
        }
        if (rc == 0)
            return 0;
        if (cg->dirfd >= 0)
            close(cg->dirfd);
        cg->dirfd = -1;
    }
    return rc;
}

uint64_t mproc__memcg_oom_kills(const struct mproc__memcg *cg, int index)
{
    char name[64], file[96], buf[1024];
    worker_name(cg, index, name, sizeof name);
    snprintf(file, sizeof file, "%s/%s", name,
             cg->kind == MPROC_MEMLIMIT_CGROUP2 ? "memory.events" : "memory.oom_control");
    if (read_at(cg->dirfd, file, buf, sizeof buf) < 0)
        return 0;
    for (const char *line = buf; line; line = strchr(line, '\n')) {
        line += *line == '\n'; /* past the newline that ended the last one */
        unsigned long long v;
        if (sscanf(line, "oom_kill %llu", &v) == 1)
            return v;
    }
    return 0;
}

int mproc__memcg_worker(struct mproc__memcg *cg, int index, uint64_t *oom_kills)
{
    char name[64], file[96];
    worker_name(cg, index, name, sizeof name);
    int rc = make_worker_cgroup(cg, name);
    if (rc != 0)
        return rc;
    *oom_kills = mproc__memcg_oom_kills(cg, index);
    snprintf(file, sizeof file, "%s/cgroup.procs", name);
    int fd = openat(cg->dirfd, file, O_WRONLY | O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

int mproc__memcg_join(int procs_fd)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    ssize_t k = write(procs_fd, buf, (size_t)n);
    return k == n ? 0 : k < 0 ? -errno : -EIO;
}

void mproc__memcg_close(struct mproc__memcg *cg, unsigned nworkers)
{
    if (cg->dirfd < 0)
        return;
    for (unsigned i = 0; i < nworkers; i++) {
        char name[64];
        worker_name(cg, (int)i, name, sizeof name);
        (void)unlinkat(cg->dirfd, name, AT_REMOVEDIR); /* else the next sweep */
    }
    close(cg->dirfd);
    cg->dirfd = -1;
}
