/*
 * os/arena.h -- a lock-free allocator for small objects in shared memory
 * (internal).
 *
 * An arena is one memfd-backed MAP_SHARED mapping. Its control block sits
 * at offset 0 and holds only offsets, never pointers, so a process that
 * maps the same memfd at another address (a spawned child) can use it
 * too. Blocks come in size classes two per power of two (32, 48, 64, 96,
 * ... bytes, 16-byte header included); each class keeps a Treiber stack
 * of free blocks whose head carries a 32-bit tag against ABA. A request
 * is served from its class's free list, else from the never-used tail,
 * else by splitting the smallest larger free block. Free blocks are not
 * merged: memory freed as many small blocks does not come back as one
 * large block. Nothing ever takes a lock, so a process killed mid-call
 * can at worst leak the block(s) it was handling.
 */
#ifndef MPROC_OS_ARENA_H
#define MPROC_OS_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct mproc__arena mproc__arena;

/* Create an arena of `size` bytes (rounded up to pages). On success
 * *out is the mapping and *fd its memfd (close-on-exec), kept open by the
 * caller for handing to spawned children. Returns 0 or -errno. */
int mproc__arena_create(size_t size, mproc__arena **out, int *fd);

/* Map an existing arena from its memfd (e.g. in a spawned child).
 * Returns 0, -EINVAL (not an arena) or -errno. */
int mproc__arena_attach(int fd, mproc__arena **out);

/* Unmap (the memory lives on in other processes that map it). */
void mproc__arena_detach(mproc__arena *a);

/* Zeroed, 16-byte aligned block of at least `size` bytes, or NULL with
 * errno EINVAL (size 0) / ENOMEM (arena full). */
void *mproc__arena_alloc(mproc__arena *a, size_t size);

/* Return a block to its class. 0, or -EINVAL for a pointer that is not a
 * live block of this arena (double free included). */
int mproc__arena_free(mproc__arena *a, void *p);

/* Offset of p in the arena and back; offsets are what shared structures
 * store. */
uint64_t mproc__arena_off(const mproc__arena *a, const void *p);
void *mproc__arena_ptr(const mproc__arena *a, uint64_t off);

/* The process tree's default arena behind mproc_shared_calloc, created on
 * first use; NULL with errno set if it cannot be created. */
mproc__arena *mproc__shared_arena(void);

#endif /* MPROC_OS_ARENA_H */
