/*
 * tests/test_arena.c -- the lock-free shared-memory arena (os/arena.h):
 * splitting, views at two addresses, and processes killed at random
 * points of alloc/free leaving an arena that still hands out disjoint
 * blocks.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mproc.h"
#include "os/arena.h"
#include "runner.h"
#include "helpers.h"

#define ARENA (1u << 20)

/* Fill a block with a byte that names its owner; check it later. */
static void stamp(void *p, size_t n, unsigned char v)
{
    memset(p, v, n);
}

/* Allocate every block of `size` the arena will give; each is stamped
 * with its index, then all are verified (overlap would corrupt one). */
static int fill_and_check(mproc__arena *a, size_t size, void **blocks, int cap)
{
    int n = 0;
    while (n < cap) {
        void *p = mproc__arena_alloc(a, size);
        if (!p) {
            CHECK_EQ(errno, ENOMEM);
            break;
        }
        CHECK_MSG(test_all_bytes(p, size, 0), "block %d not zeroed", n);
        stamp(p, size, (unsigned char)(n * 7 + 1));
        blocks[n++] = p;
    }
    for (int i = 0; i < n; i++)
        CHECK_MSG(test_all_bytes(blocks[i], size, (unsigned char)(i * 7 + 1)),
                  "block %d of %zu bytes overlaps another", i, size);
    return n;
}

static void *blocks[1 << 16];

/* A large free block is split to serve small requests. */
TEST(split_large_block_for_small_ones)
{
    mproc__arena *a;
    int fd;
    CHECK_OK(mproc__arena_create(ARENA, &a, &fd));
    void *big = mproc__arena_alloc(a, ARENA / 2);
    CHECK(big != NULL);
    int n = fill_and_check(a, 1000, blocks, 1 << 16); /* the rest of the tail */
    CHECK(n > 0);
    CHECK_OK(mproc__arena_free(a, big));
    int more = fill_and_check(a, 1000, blocks + n, (1 << 16) - n);
    /* 1000 + header fits a 1024-byte class block: the half-arena block
     * gives at least 90% of its blocks' worth. */
    CHECK_MSG(more >= (int)(ARENA / 2 / 1024 * 9 / 10), "only %d blocks from the split", more);
    for (int i = 0; i < n + more; i++)
        CHECK_OK(mproc__arena_free(a, blocks[i]));
    /* Everything freed: the same size fits again, as many as before. */
    CHECK_EQ(fill_and_check(a, 1000, blocks, 1 << 16), n + more);
    mproc__arena_detach(a);
    close(fd);
}

/* Double free and foreign pointers are refused, not corrupting. */
TEST(free_rejects_bad_pointers)
{
    mproc__arena *a;
    int fd;
    CHECK_OK(mproc__arena_create(ARENA, &a, &fd));
    char *p = mproc__arena_alloc(a, 64);
    CHECK(p != NULL);
    CHECK_OK(mproc__arena_free(a, p));
    CHECK_RC(mproc__arena_free(a, p), -EINVAL);
    int local;
    CHECK_RC(mproc__arena_free(a, &local), -EINVAL);
    CHECK_RC(mproc__arena_free(a, (char *)a + 8), -EINVAL);
    /* The freed block comes back exactly once. */
    char *q = mproc__arena_alloc(a, 64), *r = mproc__arena_alloc(a, 64);
    CHECK(q != NULL && r != NULL && q != r);
    mproc__arena_detach(a);
    close(fd);
}

/* The same memfd mapped twice (as a spawned child would): a block
 * allocated through one view is the same memory through the other. */
TEST(two_views_share_blocks_by_offset)
{
    mproc__arena *a, *b;
    int fd;
    CHECK_OK(mproc__arena_create(ARENA, &a, &fd));
    CHECK_OK(mproc__arena_attach(fd, &b));
    CHECK(a != b);
    char *p = mproc__arena_alloc(a, 100);
    strcpy(p, "visto desde la otra vista");
    char *q = mproc__arena_ptr(b, mproc__arena_off(a, p));
    CHECK(strcmp(q, "visto desde la otra vista") == 0);
    CHECK_OK(mproc__arena_free(b, q)); /* freed through the other view */
    CHECK_RC(mproc__arena_free(a, p), -EINVAL);
    int junk = memfd_create("not-an-arena", 0);
    CHECK_EQ(ftruncate(junk, 1 << 16), 0);
    mproc__arena *bad;
    CHECK_RC(mproc__arena_attach(junk, &bad), -EINVAL);
    close(junk);
    mproc__arena_detach(b);
    mproc__arena_detach(a);
    close(fd);
}

/* Children hammer one arena with alloc/stamp/check/free and are killed
 * with SIGKILL at random moments, over and over. Afterwards the arena
 * must still hand out disjoint, zeroed blocks: a kill may leak the
 * blocks in flight, never corrupt the free lists. */
static mproc__arena *shared;

static int hammer(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    void *mine[64] = { 0 };
    for (unsigned long i = 0;; i++) {
        seed = seed * 1103515245u + 12345u;
        int slot = (int)((seed >> 8) % 64);
        if (mine[slot]) {
            if (!test_all_bytes(mine[slot], 48, (unsigned char)slot))
                return 3; /* someone else wrote into our block */
            if (mproc__arena_free(shared, mine[slot]) != 0)
                return 4;
            mine[slot] = NULL;
        } else {
            size_t size = 48 + (seed >> 16) % 200; /* >= the 48 stamped bytes */
            void *p = mproc__arena_alloc(shared, size);
            if (!p)
                continue; /* full for now */
            memset(p, slot, 48);
            mine[slot] = p;
        }
    }
}

TEST_T(killed_mid_operation_leaves_arena_usable, 60)
{
    int fd;
    CHECK_OK(mproc__arena_create(ARENA, &shared, &fd));
    for (int round = 0; round < 30; round++) {
        pid_t kids[3];
        for (int k = 0; k < 3; k++)
            kids[k] = test_fork(hammer, (void *)(uintptr_t)(round * 3 + k + 1));
        mproc_sleep_ms(5 + round % 7);
        for (int k = 0; k < 3; k++) {
            kill(kids[k], SIGKILL);
            int st = test_wait(kids[k], 10000);
            CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                      "hammer child failed (status %#x): blocks overlapped or free failed", st);
        }
    }
    /* Whatever leaked, what is left is sound. */
    int n = fill_and_check(shared, 40, blocks, 1 << 16);
    CHECK(n > 1000);
    mproc__arena_detach(shared);
    close(fd);
}
