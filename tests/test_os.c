/*
 * tests/test_os.c -- the os layer's public face: mproc_strerror /
 * mproc_errname, mproc_now_ns, mproc_sleep_ms and the shared arena
 * (mproc_shared_calloc / mproc_shared_free) across threads and forks.
 *
 * Forks happen while the test process is single-threaded (TSan does not
 * support fork with running threads).
 */
#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mproc/os.h"
#include "os/shmap.h"
#include "runner.h"
#include "helpers.h"

/* ------------------------------------------------------------------ */
/* error texts and names                                               */
/* ------------------------------------------------------------------ */

static const struct {
    int code;
    const char *name;
} mproc_codes[] = {
    { MPROC_ECANCELLED, "MPROC_ECANCELLED" },
    { MPROC_EWORKERDIED, "MPROC_EWORKERDIED" },
    { MPROC_ETASKTIMEOUT, "MPROC_ETASKTIMEOUT" },
    { MPROC_EBROKEN, "MPROC_EBROKEN" },
    { MPROC_ESHUTDOWN, "MPROC_ESHUTDOWN" },
    { MPROC_EMEMLIMIT, "MPROC_EMEMLIMIT" },
    { MPROC_ETHREADS, "MPROC_ETHREADS" },
    { MPROC_ENOSYMBOL, "MPROC_ENOSYMBOL" },
};

#define N_MPROC_CODES (sizeof mproc_codes / sizeof mproc_codes[0])

TEST(os_strerror_errname_zero_and_errno)
{
    CHECK(mproc_strerror(0) != NULL && mproc_strerror(0)[0] != '\0');
    CHECK(strcmp(mproc_errname(0), "OK") == 0);

    static const struct {
        int e;
        const char *name, *alt;
    } errs[] = {
        { EINVAL, "EINVAL", NULL },       { ETIMEDOUT, "ETIMEDOUT", NULL },
        { EAGAIN, "EAGAIN", "EWOULDBLOCK" }, { ENOMEM, "ENOMEM", NULL },
        { EPIPE, "EPIPE", NULL },         { EOWNERDEAD, "EOWNERDEAD", NULL },
        { EBUSY, "EBUSY", NULL },         { EPERM, "EPERM", NULL },
        { EDEADLK, "EDEADLK", "EDEADLOCK" }, { EOVERFLOW, "EOVERFLOW", NULL },
        { ENOENT, "ENOENT", NULL },       { EINTR, "EINTR", NULL },
    };
    size_t n = sizeof errs / sizeof errs[0];
    for (size_t i = 0; i < n; i++) {
        const char *neg = mproc_strerror(-errs[i].e);
        const char *pos = mproc_strerror(errs[i].e);
        CHECK(neg != NULL && pos != NULL && neg[0] != '\0');
        CHECK_MSG(strcmp(neg, pos) == 0, "strerror(%d) \"%s\" != strerror(%d) \"%s\"",
                  -errs[i].e, neg, errs[i].e, pos);
        CHECK_MSG(strcmp(neg, mproc_strerror(0)) != 0, "%s has the text of 0", errs[i].name);
        const char *name = mproc_errname(-errs[i].e);
        CHECK(name != NULL);
        CHECK_MSG(strcmp(name, errs[i].name) == 0 ||
                      (errs[i].alt && strcmp(name, errs[i].alt) == 0),
                  "errname(-%s) = \"%s\"", errs[i].name, name);
        for (size_t j = 0; j < i; j++)
            CHECK_MSG(strcmp(neg, mproc_strerror(-errs[j].e)) != 0,
                      "%s and %s share the text \"%s\"", errs[i].name, errs[j].name, neg);
    }
}

TEST(os_strerror_mproc_codes)
{
    /* The table covers MPROC_ECANCELLED .. MPROC_ELAST exactly. */
    CHECK_EQ(MPROC_ECANCELLED, MPROC_EBASE - 1);
    CHECK_EQ(N_MPROC_CODES, MPROC_ECANCELLED - MPROC_ELAST + 1);
    const char *unknown = mproc_strerror(MPROC_ELAST - 1);
    for (int code = MPROC_ECANCELLED; code >= MPROC_ELAST; code--) {
        size_t i = (size_t)(MPROC_ECANCELLED - code);
        CHECK_EQ(mproc_codes[i].code, code);
        CHECK(code <= MPROC_EBASE);
        const char *s = mproc_strerror(code);
        CHECK(s != NULL && s[0] != '\0');
        CHECK_MSG(strcmp(mproc_errname(code), mproc_codes[i].name) == 0,
                  "errname(%d) = \"%s\", want %s", code, mproc_errname(code),
                  mproc_codes[i].name);
        CHECK(strcmp(s, mproc_strerror(0)) != 0);
        CHECK_MSG(strcmp(s, unknown) != 0, "%s has the generic text \"%s\"",
                  mproc_codes[i].name, s);
        CHECK(strcmp(s, mproc_strerror(-EINVAL)) != 0);
        CHECK(strcmp(s, mproc_strerror(-ETIMEDOUT)) != 0);
        for (int other = MPROC_ECANCELLED; other > code; other--)
            CHECK_MSG(strcmp(s, mproc_strerror(other)) != 0, "%d and %d share \"%s\"", code,
                      other, s);
        /* Stable: the same static string every time. */
        CHECK(mproc_strerror(code) == s);
    }
    /* The deadline of a task is not a wait that ran out. */
    CHECK(strcmp(mproc_strerror(MPROC_ETASKTIMEOUT), mproc_strerror(-ETIMEDOUT)) != 0);
}

TEST(os_strerror_unknown_codes)
{
    static const int unknown[] = {
        MPROC_EBASE, MPROC_ELAST - 1, MPROC_ELAST - 1000, -9999, -4095, -5000,
        INT_MIN, INT_MIN + 1, INT_MAX, 4095, 9999, -20000,
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *s = mproc_strerror(unknown[i]);
        CHECK_MSG(s != NULL && s[0] != '\0', "strerror(%d)", unknown[i]);
        const char *n = mproc_errname(unknown[i]);
        CHECK(n != NULL);
        CHECK_MSG(strcmp(n, "UNKNOWN") == 0, "errname(%d) = \"%s\"", unknown[i], n);
        for (int code = MPROC_ECANCELLED; code >= MPROC_ELAST; code--)
            CHECK(strcmp(s, mproc_strerror(code)) != 0);
        CHECK(strcmp(s, mproc_strerror(0)) != 0);
    }
}

static void *strerror_thread(void *arg)
{
    (void)arg;
    const char *want[N_MPROC_CODES];
    for (size_t i = 0; i < N_MPROC_CODES; i++)
        want[i] = mproc_strerror(mproc_codes[i].code);
    for (long k = 0; k < test_scaled_stress(20000); k++) {
        size_t i = (size_t)k % N_MPROC_CODES;
        CHECK(mproc_strerror(mproc_codes[i].code) == want[i]);
        CHECK(strcmp(mproc_errname(mproc_codes[i].code), mproc_codes[i].name) == 0);
        CHECK(mproc_strerror(-(int)(k % 140)) != NULL);
        CHECK(mproc_errname(-(int)(k % 140)) != NULL);
    }
    return NULL;
}

TEST(os_strerror_threads)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = test_start_thread(strerror_thread, NULL);
    for (int i = 0; i < 4; i++)
        test_join_thread(t[i]);
}

/* ------------------------------------------------------------------ */
/* clock and sleep                                                     */
/* ------------------------------------------------------------------ */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

TEST(os_now_ns_monotonic)
{
    /* It is CLOCK_MONOTONIC: bracketed by two readings of it. */
    for (int i = 0; i < 1000; i++) {
        int64_t a = mono_ns();
        int64_t n = mproc_now_ns();
        int64_t b = mono_ns();
        CHECK_MSG(a <= n && n <= b, "%lld not in [%lld, %lld]", (long long)n, (long long)a,
                  (long long)b);
    }
    int64_t prev = mproc_now_ns();
    CHECK(prev > 0);
    for (long i = 0; i < test_scaled_stress(1000000); i++) {
        int64_t now = mproc_now_ns();
        CHECK_MSG(now >= prev, "went back from %lld to %lld", (long long)prev,
                  (long long)now);
        prev = now;
    }
    int64_t t0 = mproc_now_ns();
    usleep(20000);
    CHECK(mproc_now_ns() - t0 >= 20 * 1000000LL);
}

TEST(os_sleep_ms)
{
    static const int64_t ms[] = { 1, 10, 50, 120 };
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        int64_t t0 = mproc_now_ns();
        CHECK_OK(mproc_sleep_ms(ms[i]));
        int64_t dt = mproc_now_ns() - t0;
        CHECK_MSG(dt >= ms[i] * 1000000, "sleep_ms(%lld) slept %lld ns", (long long)ms[i],
                  (long long)dt);
    }
    int64_t t0 = mproc_now_ns();
    CHECK_OK(mproc_sleep_ms(0));
    CHECK_OK(mproc_sleep_ms(-1));
    CHECK_OK(mproc_sleep_ms(-1000));
    CHECK_OK(mproc_sleep_ms(INT64_MIN));
    CHECK(mproc_now_ns() - t0 < 500 * 1000000LL);
}

TEST(os_sleep_ms_resumes_after_signals)
{
    test_sigalrm_every(3000); /* no SA_RESTART: nanosleep gets EINTR */
    int64_t t0 = mproc_now_ns();
    CHECK_OK(mproc_sleep_ms(150));
    int64_t dt = mproc_now_ns() - t0;
    test_sigalrm_every(0);
    /* At least one landed mid-sleep (TSan defers signals that arrive in
     * intercepted calls, so it may deliver only a few). */
    CHECK_MSG(atomic_load(&test_sigalrm_count) >= 1, "no signal arrived");
    CHECK_MSG(dt >= 150 * 1000000LL, "slept %lld ns with signals", (long long)dt);
}

/* ------------------------------------------------------------------ */
/* shared arena: single process                                        */
/* ------------------------------------------------------------------ */

static int count_dev_shm(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

TEST(os_shared_free_bad_pointers)
{
    /* Before the arena exists in this process. */
    static char global[64];
    char stack[64];
    void *heap = malloc(64);
    CHECK(heap != NULL);
    CHECK_OK(mproc_shared_free(NULL));
    CHECK_RC(mproc_shared_free(heap), -EINVAL);
    CHECK_RC(mproc_shared_free(stack), -EINVAL);
    CHECK_RC(mproc_shared_free(global), -EINVAL);

    int before = count_dev_shm();
    void *p = mproc_shared_calloc(100);
    CHECK(p != NULL);
    /* The arena is not a named segment that could leak. */
    CHECK_EQ(count_dev_shm(), before);

    CHECK_OK(mproc_shared_free(NULL));
    CHECK_RC(mproc_shared_free(heap), -EINVAL);
    CHECK_RC(mproc_shared_free(stack), -EINVAL);
    CHECK_RC(mproc_shared_free(global), -EINVAL);
    CHECK_RC(mproc_shared_free((void *)(uintptr_t)16), -EINVAL);
    void *m = test_map_shared(4096);
    CHECK_RC(mproc_shared_free(m), -EINVAL);
    munmap(m, 4096);
    /* The real block is unharmed and frees fine. */
    CHECK(test_all_bytes(p, 100, 0));
    CHECK_OK(mproc_shared_free(p));
    free(heap);
}

TEST(os_shared_calloc_size_zero_and_too_big)
{
    errno = 0;
    CHECK(mproc_shared_calloc(0) == NULL);
    CHECK_EQ(errno, EINVAL);
    static const size_t big[] = {
        MPROC_SHARED_ARENA_SIZE + 1, (size_t)2 * MPROC_SHARED_ARENA_SIZE,
        SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 15, SIZE_MAX - 64, SIZE_MAX / 2 + 1,
        (size_t)1 << 62,
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        errno = 0;
        void *p = mproc_shared_calloc(big[i]);
        CHECK_MSG(p == NULL, "shared_calloc(%zu) gave a block", big[i]);
        CHECK_MSG(errno == ENOMEM, "shared_calloc(%zu): errno %d", big[i], errno);
    }
    /* Still working afterwards. */
    void *p = mproc_shared_calloc(32);
    CHECK(p != NULL);
    CHECK(test_all_bytes(p, 32, 0));
    CHECK_OK(mproc_shared_free(p));
}

struct block {
    unsigned char *p;
    size_t n;
};

static int cmp_block(const void *a, const void *b)
{
    const struct block *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void check_disjoint(struct block *b, size_t n)
{
    qsort(b, n, sizeof *b, cmp_block);
    for (size_t i = 1; i < n; i++)
        CHECK_MSG(b[i - 1].p + b[i - 1].n <= b[i].p, "blocks %p+%zu and %p overlap",
                  (void *)b[i - 1].p, b[i - 1].n, (void *)b[i].p);
}

TEST(os_shared_calloc_zeroed_aligned_distinct)
{
    static const size_t sizes[] = {
        1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100, 127, 128, 129,
        255, 256, 1000, 4095, 4096, 4097, 10000, 65535, 65536, 100000, 1 << 20, (1 << 20) + 1,
    };
    enum { N = sizeof sizes / sizeof sizes[0], REP = 3 };
    struct block b[N * REP];
    for (int r = 0; r < REP; r++) {
        for (size_t i = 0; i < N; i++) {
            struct block *x = &b[r * N + i];
            x->n = sizes[i];
            x->p = mproc_shared_calloc(sizes[i]);
            CHECK_MSG(x->p != NULL, "shared_calloc(%zu) failed: errno %d", sizes[i], errno);
            CHECK_MSG((uintptr_t)x->p % 16 == 0, "shared_calloc(%zu) = %p", sizes[i],
                      (void *)x->p);
            CHECK_MSG(test_all_bytes(x->p, x->n, 0), "shared_calloc(%zu) not zeroed", sizes[i]);
            memset(x->p, (int)(r * N + i) & 0xff, x->n);
        }
    }
    for (size_t i = 0; i < N * REP; i++)
        CHECK_MSG(test_all_bytes(b[i].p, b[i].n, (unsigned char)(i & 0xff)),
                  "block %zu (%zu bytes) was overwritten", i, b[i].n);
    check_disjoint(b, N * REP);
    for (size_t i = 0; i < N * REP; i++)
        CHECK_OK(mproc_shared_free(b[i].p));
}

TEST(os_shared_calloc_reused_blocks_are_zeroed)
{
    static const size_t sizes[] = { 1, 16, 24, 100, 256, 4096, 70000 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        for (int i = 0; i < 200; i++) {
            unsigned char *p = mproc_shared_calloc(sizes[s]);
            CHECK(p != NULL);
            CHECK_MSG(test_all_bytes(p, sizes[s], 0),
                      "round %d: reused %zu-byte block not zeroed", i, sizes[s]);
            memset(p, 0xff, sizes[s]);
            CHECK_OK(mproc_shared_free(p));
        }
    }
    /* Freed big, reallocated as several small ones: all zeroed. */
    unsigned char *big = mproc_shared_calloc(8192);
    CHECK(big != NULL);
    memset(big, 0xee, 8192);
    CHECK_OK(mproc_shared_free(big));
    for (int i = 0; i < 64; i++) {
        unsigned char *p = mproc_shared_calloc(128);
        CHECK(p != NULL);
        CHECK(test_all_bytes(p, 128, 0));
        memset(p, 0xdd, 128);
    }
}

/* Freed memory is reused: far more than the arena's size goes through. */
TEST_T(os_shared_calloc_free_reuse, 60)
{
    size_t mb = (size_t)1 << 20;
    long rounds = (long)(3 * (MPROC_SHARED_ARENA_SIZE / mb));
    for (long i = 0; i < rounds; i++) {
        unsigned char *p = mproc_shared_calloc(mb);
        CHECK_MSG(p != NULL, "round %ld of 1 MiB alloc+free: out of memory (no reuse?)", i);
        CHECK(p[0] == 0 && p[mb - 1] == 0 && p[mb / 2] == 0);
        p[0] = p[mb - 1] = p[mb / 2] = 1;
        CHECK_OK(mproc_shared_free(p));
    }
    /* Mixed sizes, interleaved. */
    unsigned char *keep[16] = { 0 };
    uint64_t rng = 12345;
    for (long i = 0; i < test_scaled_stress(20000); i++) {
        size_t k = test_xorshift(&rng) % 16;
        if (keep[k]) {
            CHECK_OK(mproc_shared_free(keep[k]));
            keep[k] = NULL;
        } else {
            size_t n =
                1 + test_xorshift(&rng) % (test_xorshift(&rng) % 16 == 0 ? 3 * mb : 4096);
            keep[k] = mproc_shared_calloc(n);
            CHECK_MSG(keep[k] != NULL, "alloc %zu failed at %ld: errno %d", n, i, errno);
            keep[k][0] = keep[k][n - 1] = 7;
        }
    }
    for (int k = 0; k < 16; k++)
        CHECK_OK(mproc_shared_free(keep[k]));
}

TEST_T(os_shared_calloc_exhaustion, 60)
{
    size_t chunk = (size_t)4 << 20;
    size_t max = MPROC_SHARED_ARENA_SIZE / chunk;
    void **p = calloc(max + 2, sizeof *p);
    CHECK(p != NULL);
    size_t n = 0;
    for (;;) {
        errno = 0;
        void *q = mproc_shared_calloc(chunk);
        if (!q) {
            CHECK_MSG(errno == ENOMEM, "errno %d when full", errno);
            break;
        }
        CHECK_MSG(n < max, "more than %zu blocks of %zu bytes from a %zu-byte arena", max,
                  chunk, MPROC_SHARED_ARENA_SIZE);
        p[n++] = q;
    }
    /* Size classes may round a block up to the next power of two. */
    CHECK_MSG(n >= max / 4, "only %zu blocks of 4 MiB fit", n);
    /* A small block may or may not still fit; after freeing all, a big
     * one fits again. */
    for (size_t i = 0; i < n; i++)
        CHECK_OK(mproc_shared_free(p[i]));
    void *again[8];
    for (int i = 0; i < 8; i++) {
        again[i] = mproc_shared_calloc(chunk);
        CHECK_MSG(again[i] != NULL, "after freeing everything, alloc %d failed", i);
    }
    for (int i = 0; i < 8; i++)
        CHECK_OK(mproc_shared_free(again[i]));
    free(p);
}

/* Freed memory is reused for blocks of the same size or, split, smaller
 * ones (os.h): fill the arena with big blocks, free them all, and most of
 * that memory comes back as small blocks, then as big ones again. */
static size_t fill_arena(void **p, size_t cap, size_t size)
{
    size_t n = 0;
    while (n < cap && (p[n] = mproc_shared_calloc(size)) != NULL)
        n++;
    CHECK_MSG(n < cap, "%zu blocks of %zu bytes and the arena is not full", n, size);
    CHECK_EQ(errno, ENOMEM);
    return n;
}

TEST_T(os_shared_calloc_freed_big_blocks_serve_small_ones, 60)
{
    size_t big = (size_t)1 << 20, small = (size_t)64 << 10, tiny = 1000;
    size_t cap = MPROC_SHARED_ARENA_SIZE / tiny + 1;
    void **p = calloc(cap, sizeof *p);
    CHECK(p != NULL);
    size_t nbig = fill_arena(p, cap, big);
    CHECK(nbig > 0);
    for (size_t i = 0; i < nbig; i++)
        CHECK_OK(mproc_shared_free(p[i]));
    size_t nsmall = fill_arena(p, cap, small);
    CHECK_MSG(nsmall * small >= nbig * big / 2,
              "freed %zu blocks of %zu bytes, got back only %zu blocks of %zu", nbig, big,
              nsmall, small);
    for (size_t i = 0; i < nsmall; i++)
        CHECK_OK(mproc_shared_free(p[i]));
    /* And the freed 64 KiB blocks serve 64 KiB blocks again, all of them. */
    size_t again = fill_arena(p, cap, small);
    CHECK_MSG(again >= nsmall, "%zu blocks of %zu fit, then only %zu", nsmall, small, again);
    for (size_t i = 0; i < again; i++)
        CHECK_OK(mproc_shared_free(p[i]));
    /* Tiny blocks from the same memory, a fair share of it. */
    size_t ntiny = fill_arena(p, cap, tiny);
    CHECK_MSG(ntiny * tiny >= nsmall * small / 4, "only %zu blocks of %zu bytes", ntiny, tiny);
    for (size_t i = 0; i < ntiny; i++)
        CHECK_OK(mproc_shared_free(p[i]));
    free(p);
}

/* ------------------------------------------------------------------ */
/* shared arena: threads                                               */
/* ------------------------------------------------------------------ */

enum { LIVE = 32 };

static void churn(uint64_t seed, long iters, unsigned char tag, int check_zero)
{
    struct block live[LIVE];
    memset(live, 0, sizeof live);
    uint64_t rng = seed | 1;
    for (long i = 0; i < iters; i++) {
        size_t k = test_xorshift(&rng) % LIVE;
        if (live[k].p) {
            unsigned char want = (unsigned char)(tag ^ k);
            CHECK_MSG(test_all_bytes(live[k].p, live[k].n, want),
                      "block %p (%zu bytes) overwritten by someone else", (void *)live[k].p,
                      live[k].n);
            CHECK_OK(mproc_shared_free(live[k].p));
            live[k].p = NULL;
        } else {
            size_t n = 1 + test_xorshift(&rng) % (test_xorshift(&rng) % 8 == 0 ? 20000 : 300);
            live[k].p = mproc_shared_calloc(n);
            CHECK_MSG(live[k].p != NULL, "alloc %zu failed: errno %d", n, errno);
            CHECK((uintptr_t)live[k].p % 16 == 0);
            live[k].n = n;
            if (check_zero)
                CHECK_MSG(test_all_bytes(live[k].p, n, 0), "fresh %zu-byte block not zeroed",
                          n);
            memset(live[k].p, tag ^ (unsigned char)k, n);
        }
    }
    for (size_t k = 0; k < LIVE; k++) {
        if (live[k].p) {
            CHECK(test_all_bytes(live[k].p, live[k].n, (unsigned char)(tag ^ k)));
            CHECK_OK(mproc_shared_free(live[k].p));
        }
    }
}

static atomic_int g_tag;

static void *churn_thread(void *arg)
{
    (void)arg;
    int tag = atomic_fetch_add(&g_tag, 1);
    churn((uint64_t)(tag + 1) * 0x9e3779b97f4a7c15ull, test_scaled_stress(40000),
          (unsigned char)(0x40 + 0x20 * tag), 1);
    return NULL;
}

TEST_T(os_shared_calloc_threads, 60)
{
    enum { T = 4 };
    /* The first call races too: every thread's first alloc is concurrent. */
    pthread_t t[T];
    for (int i = 0; i < T; i++)
        t[i] = test_start_thread(churn_thread, NULL);
    for (int i = 0; i < T; i++)
        test_join_thread(t[i]);
}

/* ------------------------------------------------------------------ */
/* shared arena: processes                                             */
/* ------------------------------------------------------------------ */

struct shared_note {
    char parent_text[32];
    char child_text[32];
    unsigned char *child_block;   /* allocated by the child */
    size_t child_block_len;
    unsigned char *grand_block;   /* allocated by a grandchild */
};

static int note_grandchild(void *arg)
{
    struct shared_note *n = arg;
    n->grand_block = mproc_shared_calloc(5000);
    CHECK(n->grand_block != NULL);
    memset(n->grand_block, 0x77, 5000);
    return 0;
}

static int note_child(void *arg)
{
    struct shared_note *n = arg;
    CHECK(strcmp(n->parent_text, "from the parent") == 0);
    strcpy(n->child_text, "from the child");
    n->child_block_len = 3000;
    n->child_block = mproc_shared_calloc(n->child_block_len);
    CHECK(n->child_block != NULL);
    CHECK(test_all_bytes(n->child_block, n->child_block_len, 0));
    memset(n->child_block, 0x5c, n->child_block_len);
    test_expect_child_ok(test_fork(note_grandchild, n));
    CHECK(test_all_bytes(n->grand_block, 5000, 0x77));
    return 0;
}

TEST(os_shared_calloc_fork_visibility)
{
    struct shared_note *n = mproc_shared_calloc(sizeof *n);
    CHECK(n != NULL);
    strcpy(n->parent_text, "from the parent");
    unsigned char *mine = mproc_shared_calloc(3000);
    CHECK(mine != NULL);
    memset(mine, 0x11, 3000);
    test_expect_child_ok(test_fork(note_child, n));
    CHECK(strcmp(n->child_text, "from the child") == 0);
    /* Blocks allocated after the fork, by the child and the grandchild,
     * are at the same address here. */
    CHECK(n->child_block != NULL && n->grand_block != NULL);
    CHECK(test_all_bytes(n->child_block, n->child_block_len, 0x5c));
    CHECK(test_all_bytes(n->grand_block, 5000, 0x77));
    CHECK(test_all_bytes(mine, 3000, 0x11));
    struct block b[3] = { { mine, 3000 }, { n->child_block, 3000 }, { n->grand_block, 5000 } };
    check_disjoint(b, 3);
    /* Any process may free a block another one allocated. */
    CHECK_OK(mproc_shared_free(n->child_block));
    CHECK_OK(mproc_shared_free(n->grand_block));
    CHECK_OK(mproc_shared_free(mine));
    CHECK_OK(mproc_shared_free(n));
}

/* Processes allocating at the same time never get overlapping blocks. */
enum { XP = 3, XBLOCKS = 300 };

struct xtable {
    atomic_int go;
    struct block b[XP][XBLOCKS];
};

static int g_xme;

static void xalloc(struct xtable *x, int me)
{
    uint64_t rng = (uint64_t)(me + 7) * 0x2545f4914f6cdd1dull;
    while (!atomic_load(&x->go))
        ;
    for (int i = 0; i < XBLOCKS; i++) {
        size_t n = 1 + test_xorshift(&rng) % 2000;
        unsigned char *p = mproc_shared_calloc(n);
        CHECK(p != NULL);
        CHECK(test_all_bytes(p, n, 0));
        memset(p, 0x10 * (me + 1), n);
        x->b[me][i].p = p;
        x->b[me][i].n = n;
        if (i % 3 == 0) { /* churn a bit too */
            void *q = mproc_shared_calloc(64);
            CHECK(q != NULL);
            CHECK_OK(mproc_shared_free(q));
        }
    }
}

static int xalloc_child(void *arg)
{
    xalloc(arg, g_xme);
    return 0;
}

static int churn_child(void *arg)
{
    (void)arg;
    churn((uint64_t)getpid() * 0x9e3779b97f4a7c15ull, test_scaled_stress(20000),
          (unsigned char)(0x30 + getpid() % 7), 1);
    return 0;
}

TEST_T(os_shared_calloc_processes, 60)
{
    struct xtable *x = mproc_shared_calloc(sizeof *x);
    CHECK(x != NULL);
    pid_t pid[XP];
    for (int i = 1; i < XP; i++) {
        g_xme = i;
        pid[i] = test_fork(xalloc_child, x);
    }
    atomic_store(&x->go, 1);
    xalloc(x, 0);
    for (int i = 1; i < XP; i++)
        test_expect_child_ok(pid[i]);
    struct block all[XP * XBLOCKS];
    for (int me = 0; me < XP; me++) {
        for (int i = 0; i < XBLOCKS; i++) {
            CHECK_MSG(test_all_bytes(x->b[me][i].p, x->b[me][i].n,
                                     (unsigned char)(0x10 * (me + 1))),
                      "process %d's block %d was overwritten", me, i);
            all[me * XBLOCKS + i] = x->b[me][i];
        }
    }
    check_disjoint(all, XP * XBLOCKS);
    for (int i = 0; i < XP * XBLOCKS; i++)
        CHECK_OK(mproc_shared_free(all[i].p));

    /* Then alloc/free churn in three processes at once. */
    for (int i = 1; i < XP; i++)
        pid[i] = test_fork(churn_child, NULL);
    churn_child(NULL);
    for (int i = 1; i < XP; i++)
        test_expect_child_ok(pid[i]);
    CHECK_OK(mproc_shared_free(x));
}

/* A process forked before the first call gets an arena of its own. */
static int g_to_child[2], g_to_parent[2];

static int own_arena_child(void *arg)
{
    (void)arg;
    char c;
    CHECK_EQ(read(g_to_child[0], &c, 1), 1);
    unsigned char *p = mproc_shared_calloc(4096);
    CHECK(p != NULL);
    CHECK(test_all_bytes(p, 4096, 0));
    memset(p, 0x99, 4096);
    CHECK_EQ(write(g_to_parent[1], &p, sizeof p), (ssize_t)sizeof p);
    CHECK_EQ(read(g_to_child[0], &c, 1), 1);
    CHECK(test_all_bytes(p, 4096, 0x99));
    return 0;
}

TEST(os_shared_calloc_forked_before_first_call)
{
    CHECK_EQ(pipe(g_to_child), 0);
    CHECK_EQ(pipe(g_to_parent), 0);
    pid_t pid = test_fork(own_arena_child, NULL);
    unsigned char *mine = mproc_shared_calloc(4096);
    CHECK(mine != NULL);
    memset(mine, 0x22, 4096);
    char c = 'g';
    CHECK_EQ(write(g_to_child[1], &c, 1), 1);
    unsigned char *theirs;
    CHECK_EQ(read(g_to_parent[0], &theirs, sizeof theirs), (ssize_t)sizeof theirs);
    /* The child's writes (maybe at the same address) did not reach us. */
    CHECK(test_all_bytes(mine, 4096, 0x22));
    memset(mine, 0x33, 4096);
    CHECK_EQ(write(g_to_child[1], &c, 1), 1);
    test_expect_child_ok(pid);
    CHECK(test_all_bytes(mine, 4096, 0x33));
    CHECK_OK(mproc_shared_free(mine));
    (void)theirs;
}

/* ---- os/shmap.h ---------------------------------------------------------- */

TEST(shmap_shared_with_fork_child)
{
    mproc__shmap m;
    CHECK_OK(mproc__shmap_create(&m, "test", 10000, 0));
    CHECK(m.size >= 10000 && m.fd >= 0);
    CHECK(test_all_bytes(m.addr, m.size, 0));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        memset(m.addr, 0x5a, 10000);
        _exit(0);
    }
    test_expect_child_ok(pid);
    CHECK(test_all_bytes(m.addr, 10000, 0x5a));
    mproc__shmap other;
    CHECK_OK(mproc__shmap_attach(&other, m.fd));
    CHECK(other.size == m.size && other.fd == -1);
    CHECK(test_all_bytes(other.addr, 10000, 0x5a));
    mproc__shmap_destroy(&other);
    mproc__shmap_destroy(&m);
    CHECK(m.addr == NULL && m.fd == -1);
}

TEST(shmap_bad_sizes)
{
    mproc__shmap m;
    CHECK_RC(mproc__shmap_create(&m, "test", 0, 0), -EINVAL);
    CHECK_RC(mproc__shmap_create(&m, "test", SIZE_MAX, 0), -EINVAL);
    CHECK(m.addr == NULL && m.fd == -1);
    CHECK_RC(mproc__shmap_attach(&m, -1), -EBADF);
}
