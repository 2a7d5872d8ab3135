/*
 * os/shmap.c -- shared mappings of their own (see shmap.h).
 */
#include "os/shmap.h"

#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t page_round(size_t size)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return size > SIZE_MAX - page ? 0 : (size + page - 1) & ~(page - 1);
}

static int map_fd(mproc__shmap *m, int fd, size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    m->addr = p;
    m->size = size;
    m->fd = fd;
    return 0;
}

int mproc__shmap_create(mproc__shmap *m, const char *name, size_t size, int huge)
{
    m->addr = NULL;
    m->size = 0;
    m->fd = -1;
    size_t total = page_round(size);
    if (size == 0 || total == 0 || total > (size_t)INT64_MAX)
        return -EINVAL;
    int fd = memfd_create(name ? name : "mproc", MFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = ftruncate(fd, (off_t)total) == 0 ? map_fd(m, fd, total) : -errno;
    if (rc != 0) {
        close(fd);
        return rc == -EFBIG ? -ENOMEM : rc;
    }
#ifdef MADV_HUGEPAGE
    if (huge)
        madvise(m->addr, total, MADV_HUGEPAGE); /* advice only */
#else
    (void)huge;
#endif
    return 0;
}

int mproc__shmap_attach(mproc__shmap *m, int fd)
{
    m->addr = NULL;
    m->size = 0;
    m->fd = -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    if (st.st_size <= 0)
        return -EINVAL;
    int rc = map_fd(m, fd, (size_t)st.st_size);
    m->fd = -1; /* the caller keeps its descriptor */
    return rc;
}

void mproc__shmap_destroy(mproc__shmap *m)
{
    if (m->addr)
        munmap(m->addr, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->addr = NULL;
    m->size = 0;
    m->fd = -1;
}
