/*
 * os/shmap.h -- a mapping of its own shared with forked children
 * (internal).
 *
 * For objects too large for the shared arena (queues' rings, big arrays,
 * anonymous shared segments): a memfd of the rounded-up size, mapped
 * MAP_SHARED. The mapping is inherited by fork at the same address; the
 * memory goes away when the last mapping and descriptor are gone, so it
 * cannot leak. The descriptor is kept (close-on-exec) so that the memory
 * can later be handed to another process (SCM_RIGHTS or inheritance).
 */
#ifndef MPROC_OS_SHMAP_H
#define MPROC_OS_SHMAP_H

#include <stddef.h>

typedef struct mproc__shmap {
    void *addr;   /* page aligned; zeroed when created */
    size_t size;  /* bytes mapped: the request rounded up to pages */
    int fd;       /* the memfd, or -1 once closed */
} mproc__shmap;

/* Create a zeroed shared mapping of at least `size` bytes (size > 0),
 * named `name` in /proc/<pid>/maps (memfd:<name>). `huge` asks for
 * transparent huge pages (MADV_HUGEPAGE; ignored where unsupported).
 * Returns 0, -EINVAL, -ENOMEM, -EMFILE or another -errno. */
int mproc__shmap_create(mproc__shmap *m, const char *name, size_t size, int huge);

/* Map the memfd `fd` (not taken over: the caller keeps it) whole.
 * Returns 0 or -errno. */
int mproc__shmap_attach(mproc__shmap *m, int fd);

/* Unmap and close. Other processes' mappings stay valid. */
void mproc__shmap_destroy(mproc__shmap *m);

#endif /* MPROC_OS_SHMAP_H */
