/*
 * tests/test_dict.c -- the shared dict and list: every call, growth
 * (table rebuilds, index growth), iteration, full objects (-ENOSPC) and
 * space reuse, bad arguments, many processes and threads at once, and
 * processes SIGKILLed at each commit point of a change (fault points):
 * the change is whole or absent, and the next caller goes on without
 * seeing -EOWNERDEAD.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mproc/ipc.h"
#include "os/fault.h"
#include "runner.h"
#include "helpers.h"

#define NPROC 4

static void set_str(mproc_dict *d, const char *k, const char *v)
{
    CHECK_OK(mproc_dict_set(d, k, v, strlen(v)));
}

/* d[k] must be the string v. */
static void check_str(mproc_dict *d, const char *k, const char *v)
{
    char buf[256];
    size_t n;
    CHECK_OK(mproc_dict_get(d, k, buf, sizeof buf, &n));
    CHECK_EQ(n, strlen(v));
    CHECK_MSG(memcmp(buf, v, n) == 0, "d[%s] is %.*s, want %s", k, (int)n, buf, v);
}

/* ------------------------------------------------------------------ */
/* dict                                                                */
/* ------------------------------------------------------------------ */

TEST(dict_basic)
{
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, NULL));
    CHECK_EQ(mproc_dict_len(d), 0);
    CHECK_EQ(mproc_dict_contains(d, "a"), 0);
    set_str(d, "a", "uno");
    set_str(d, "b", "dos");
    CHECK_EQ(mproc_dict_len(d), 2);
    CHECK_EQ(mproc_dict_contains(d, "a"), 1);
    check_str(d, "a", "uno");
    check_str(d, "b", "dos");
    /* Replace, with a longer and then an empty value. */
    set_str(d, "a", "uno, otra vez, y más largo");
    check_str(d, "a", "uno, otra vez, y más largo");
    CHECK_OK(mproc_dict_set(d, "a", NULL, 0));
    check_str(d, "a", "");
    CHECK_EQ(mproc_dict_len(d), 2);
    /* Too small a buffer. */
    char buf[2];
    size_t n;
    CHECK_RC(mproc_dict_get(d, "b", buf, sizeof buf, &n), -EMSGSIZE);
    CHECK_EQ(n, 3);
    CHECK_RC(mproc_dict_get(d, "zz", buf, sizeof buf, &n), -ENOENT);
    /* Delete. */
    CHECK_OK(mproc_dict_delete(d, "b"));
    CHECK_RC(mproc_dict_delete(d, "b"), -ENOENT);
    CHECK_EQ(mproc_dict_contains(d, "b"), 0);
    CHECK_EQ(mproc_dict_len(d), 1);
    set_str(d, "b", "de nuevo");
    check_str(d, "b", "de nuevo");
    /* The empty key and the longest one are keys like any other. */
    set_str(d, "", "vacía");
    check_str(d, "", "vacía");
    char longkey[MPROC_DICT_KEY_MAX + 2];
    memset(longkey, 'k', MPROC_DICT_KEY_MAX);
    longkey[MPROC_DICT_KEY_MAX] = '\0';
    set_str(d, longkey, "larga");
    check_str(d, longkey, "larga");
    longkey[MPROC_DICT_KEY_MAX] = 'k';
    longkey[MPROC_DICT_KEY_MAX + 1] = '\0';
    CHECK_RC(mproc_dict_set(d, longkey, "x", 1), -EINVAL);
    CHECK_RC(mproc_dict_get(d, longkey, buf, sizeof buf, &n), -EINVAL);
    CHECK_EQ(mproc_dict_len(d), 4);
    CHECK_OK(mproc_dict_destroy(d));
}

TEST(dict_grow)
{
    long keys = test_scaled_stress(20000);
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, NULL));
    char k[32], v[64];
    for (long i = 0; i < keys; i++) {
        snprintf(k, sizeof k, "clave-%ld", i);
        snprintf(v, sizeof v, "%0*ld", (int)(i % 50) + 1, i);
        set_str(d, k, v);
    }
    CHECK_EQ(mproc_dict_len(d), keys);
    for (long i = 0; i < keys; i += 2) {
        snprintf(k, sizeof k, "clave-%ld", i);
        CHECK_OK(mproc_dict_delete(d, k));
    }
    CHECK_EQ(mproc_dict_len(d), keys - (keys + 1) / 2);
    for (long i = 0; i < keys; i++) {
        snprintf(k, sizeof k, "clave-%ld", i);
        CHECK_EQ(mproc_dict_contains(d, k), i % 2);
        if (i % 2) {
            snprintf(v, sizeof v, "%0*ld", (int)(i % 50) + 1, i);
            check_str(d, k, v);
        }
    }
    /* Churn: deleted slots and blocks are reused, the dict stays small. */
    for (int round = 0; round < 20; round++) {
        for (long i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "churn-%d-%ld", round, i);
            set_str(d, k, "x");
        }
        for (long i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "churn-%d-%ld", round, i);
            CHECK_OK(mproc_dict_delete(d, k));
        }
    }
    CHECK_EQ(mproc_dict_len(d), keys - (keys + 1) / 2);
    CHECK_OK(mproc_dict_destroy(d));
}

TEST(dict_iterate)
{
    int keys = 300;
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, NULL));
    char k[MPROC_DICT_KEY_MAX + 1], v[32];
    for (int i = 0; i < keys; i++) {
        snprintf(k, sizeof k, "k%d", i);
        snprintf(v, sizeof v, "v%d", i);
        set_str(d, k, v);
    }
    char seen[300] = { 0 };
    mproc_dict_iter it = MPROC_DICT_ITER_INIT;
    size_t vlen;
    int rc, got = 0;
    while ((rc = mproc_dict_next(d, &it, k, sizeof k, v, sizeof v, &vlen)) == 0) {
        int i = atoi(k + 1);
        CHECK(i >= 0 && i < keys);
        CHECK_EQ(seen[i], 0);
        seen[i] = 1;
        char want[32];
        snprintf(want, sizeof want, "v%d", i);
        CHECK_EQ(vlen, strlen(want));
        CHECK(memcmp(v, want, vlen) == 0);
        got++;
    }
    CHECK_RC(rc, -ENOENT);
    CHECK_EQ(got, keys);
    CHECK_RC(mproc_dict_next(d, &it, k, sizeof k, v, sizeof v, &vlen), -ENOENT);

    /* Keys only; a too-small key buffer does not advance. */
    mproc_dict_iter it2 = MPROC_DICT_ITER_INIT;
    char tiny[2];
    CHECK_RC(mproc_dict_next(d, &it2, tiny, sizeof tiny, NULL, 0, NULL), -EMSGSIZE);
    CHECK_OK(mproc_dict_next(d, &it2, k, sizeof k, NULL, 0, NULL));
    /* Deleting during an iteration is fine; growing it restarts it. */
    CHECK_OK(mproc_dict_delete(d, k));
    CHECK_OK(mproc_dict_next(d, &it2, k, sizeof k, NULL, 0, NULL));
    for (int i = 0; i < keys; i++) {
        snprintf(k, sizeof k, "nueva%d", i);
        set_str(d, k, "x");
    }
    CHECK_RC(mproc_dict_next(d, &it2, k, sizeof k, NULL, 0, NULL), -EAGAIN);

    /* Empty dict. */
    mproc_dict *e;
    CHECK_OK(mproc_dict_create(&e, NULL));
    mproc_dict_iter it3 = MPROC_DICT_ITER_INIT;
    CHECK_RC(mproc_dict_next(e, &it3, k, sizeof k, NULL, 0, NULL), -ENOENT);
    CHECK_OK(mproc_dict_destroy(e));
    CHECK_OK(mproc_dict_destroy(d));
}

TEST(dict_nospc)
{
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, &(mproc_dict_opts){ .max_bytes = 1 }));
    static char big[4000];
    char k[32];
    int rc = 0, n = 0;
    while (n < 100000) {
        snprintf(k, sizeof k, "k%d", n);
        rc = mproc_dict_set(d, k, big, sizeof big);
        if (rc != 0)
            break;
        n++;
    }
    CHECK_RC(rc, -ENOSPC);
    CHECK(n > 2);
    CHECK_EQ(mproc_dict_len(d), n);
    CHECK_EQ(mproc_dict_contains(d, k), 0); /* the failed set changed nothing */
    /* Too large to ever fit. */
    CHECK_RC(mproc_dict_set(d, "k0", big, SIZE_MAX / 2), -ENOSPC);
    size_t len;
    CHECK_RC(mproc_dict_get(d, "k0", NULL, 0, &len), -EMSGSIZE);
    CHECK_EQ(len, sizeof big);
    /* Space is reused after a delete. */
    CHECK_OK(mproc_dict_delete(d, "k0"));
    CHECK_OK(mproc_dict_set(d, k, big, sizeof big));
    CHECK_EQ(mproc_dict_len(d), n);
    CHECK_OK(mproc_dict_destroy(d));
}

TEST(dict_bad_args)
{
    mproc_dict *d = (mproc_dict *)1;
    size_t n;
    char buf[4];
    CHECK_RC(mproc_dict_create(NULL, NULL), -EINVAL);
    CHECK_RC(mproc_dict_create(&d, &(mproc_dict_opts){ .max_bytes = SIZE_MAX }), -ENOMEM);
    CHECK(d == NULL);
    CHECK_RC(mproc_dict_set(NULL, "a", "b", 1), -EINVAL);
    CHECK_RC(mproc_dict_get(NULL, "a", buf, 4, &n), -EINVAL);
    CHECK_RC(mproc_dict_delete(NULL, "a"), -EINVAL);
    CHECK_RC(mproc_dict_contains(NULL, "a"), -EINVAL);
    CHECK_EQ(mproc_dict_len(NULL), 0);
    CHECK_OK(mproc_dict_destroy(NULL));
    CHECK_OK(mproc_dict_create(&d, NULL));
    CHECK_RC(mproc_dict_set(d, NULL, "b", 1), -EINVAL);
    CHECK_RC(mproc_dict_set(d, "a", NULL, 1), -EINVAL);
    CHECK_RC(mproc_dict_get(d, "a", NULL, 4, &n), -EINVAL);
    CHECK_RC(mproc_dict_get(d, "a", buf, 4, NULL), -EINVAL);
    CHECK_RC(mproc_dict_get(d, NULL, buf, 4, &n), -EINVAL);
    CHECK_RC(mproc_dict_delete(d, NULL), -EINVAL);
    CHECK_RC(mproc_dict_contains(d, NULL), -EINVAL);
    mproc_dict_iter it = MPROC_DICT_ITER_INIT;
    CHECK_RC(mproc_dict_next(d, NULL, buf, 4, NULL, 0, NULL), -EINVAL);
    CHECK_RC(mproc_dict_next(d, &it, NULL, 4, NULL, 0, NULL), -EINVAL);
    CHECK_RC(mproc_dict_next(d, &it, buf, 4, buf, 4, NULL), -EINVAL);
    CHECK_RC(mproc_dict_next(NULL, &it, buf, 4, NULL, 0, NULL), -EINVAL);
    /* A list is not a dict. */
    mproc_list *l;
    CHECK_OK(mproc_list_create(&l, NULL));
    CHECK_RC(mproc_dict_set((mproc_dict *)l, "a", "b", 1), -EINVAL);
    CHECK_RC(mproc_list_append((mproc_list *)d, "b", 1), -EINVAL);
    CHECK_RC(mproc_dict_destroy((mproc_dict *)l), -EINVAL);
    CHECK_OK(mproc_list_destroy(l));
    CHECK_OK(mproc_dict_destroy(d));
}

/* Each process writes keys of its own and reads back the others'. */
static long g_iters;

static int dict_child(void *arg)
{
    mproc_dict *d = arg;
    pid_t me = getpid();
    char k[48], v[48];
    for (long i = 0; i < g_iters; i++) {
        snprintf(k, sizeof k, "%d-%ld", (int)me, i);
        snprintf(v, sizeof v, "valor %ld de %d", i, (int)me);
        if (mproc_dict_set(d, k, v, strlen(v) + 1) != 0)
            return 1;
        size_t n;
        char back[48];
        if (mproc_dict_get(d, k, back, sizeof back, &n) != 0 || strcmp(back, v) != 0)
            return 2;
        if (i % 3 == 0 && mproc_dict_delete(d, k) != 0)
            return 3;
    }
    return 0;
}

TEST(dict_processes)
{
    g_iters = test_scaled_stress(4000);
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, NULL));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(dict_child, d);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    long per = g_iters - (g_iters + 2) / 3;
    CHECK_EQ(mproc_dict_len(d), NPROC * per);
    /* Every surviving key is there with its value. */
    mproc_dict_iter it = MPROC_DICT_ITER_INIT;
    char k[MPROC_DICT_KEY_MAX + 1], v[48];
    size_t vlen;
    long count = 0;
    int rc;
    while ((rc = mproc_dict_next(d, &it, k, sizeof k, v, sizeof v, &vlen)) == 0) {
        int pid;
        long i;
        CHECK_EQ(sscanf(k, "%d-%ld", &pid, &i), 2);
        char want[48];
        snprintf(want, sizeof want, "valor %ld de %d", i, pid);
        CHECK(strcmp(v, want) == 0);
        CHECK(i % 3 != 0);
        count++;
    }
    CHECK_RC(rc, -ENOENT);
    CHECK_EQ(count, NPROC * per);
    CHECK_OK(mproc_dict_destroy(d));
}

/* A child is SIGKILLed at a commit point of a change, holding the lock. */
static const char *g_point;

static int crash_child(void *arg)
{
    mproc_dict *d = arg;
    mproc__fault_arm(g_point, 1, mproc__fault_kill_self);
    char k[32];
    for (int i = 0;; i++) { /* until a set passes the armed point */
        snprintf(k, sizeof k, "nueva%d", i);
        if (mproc_dict_set(d, k, "v", 1) != 0)
            return 1;
    }
}

TEST(dict_crash_mid_set)
{
    const char *points[3] = { "dict.set.written", "dict.set.linked", "dict.rehash.built" };
    for (int p = 0; p < 3; p++) {
        mproc_dict *d;
        CHECK_OK(mproc_dict_create(&d, NULL));
        set_str(d, "vieja", "sigue");
        g_point = points[p];
        test_expect_child_killed(test_fork(crash_child, d));
        /* The next caller repairs silently: the lock's death report is
         * not passed on. */
        size_t len = mproc_dict_len(d);
        check_str(d, "vieja", "sigue");
        /* Exactly the keys that are there are counted. */
        mproc_dict_iter it = MPROC_DICT_ITER_INIT;
        char k[MPROC_DICT_KEY_MAX + 1];
        size_t n = 0;
        while (mproc_dict_next(d, &it, k, sizeof k, NULL, 0, NULL) == 0)
            n++;
        CHECK_EQ(n, len);
        /* The child set nueva0, nueva1, ... in order: all up to the one
         * it died in are there, that one is whole or absent. */
        char last[32];
        if (p == 0) { /* died before the first commit */
            CHECK_EQ(len, 1);
        } else if (p == 1) { /* died after it, before counting it */
            CHECK_EQ(len, 2);
            check_str(d, "nueva0", "v");
        } else { /* died rebuilding the table for the next key */
            CHECK(len > 2);
            snprintf(last, sizeof last, "nueva%zu", len - 2);
            check_str(d, last, "v");
            snprintf(last, sizeof last, "nueva%zu", len - 1);
            CHECK_EQ(mproc_dict_contains(d, last), 0);
        }
        /* And it keeps working. */
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "después%d", i);
            set_str(d, k, "ok");
        }
        CHECK_EQ(mproc_dict_len(d), len + 100);
        CHECK_OK(mproc_dict_destroy(d));
    }
}

struct thr {
    mproc_dict *d;
    int id;
    int bad;
};

static void *dict_thread(void *arg)
{
    struct thr *t = arg;
    char k[32];
    long n = test_scaled_stress(5000);
    for (long i = 0; i < n; i++) {
        snprintf(k, sizeof k, "t%d-%ld", t->id, i % 64);
        if (mproc_dict_set(t->d, k, &i, sizeof i) != 0)
            t->bad++;
        long back;
        size_t len;
        if (mproc_dict_get(t->d, k, &back, sizeof back, &len) != 0 || back != i)
            t->bad++;
        if (i % 5 == 0 && mproc_dict_delete(t->d, k) != 0)
            t->bad++;
    }
    return NULL;
}

TEST(dict_threads)
{
    mproc_dict *d;
    CHECK_OK(mproc_dict_create(&d, NULL));
    struct thr t[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        t[i] = (struct thr){ .d = d, .id = i };
        th[i] = test_start_thread(dict_thread, &t[i]);
    }
    for (int i = 0; i < 4; i++) {
        test_join_thread(th[i]);
        CHECK_EQ(t[i].bad, 0);
    }
    CHECK_OK(mproc_dict_destroy(d));
}

/* ------------------------------------------------------------------ */
/* list                                                                */
/* ------------------------------------------------------------------ */

TEST(list_basic)
{
    mproc_list *l;
    CHECK_OK(mproc_list_create(&l, NULL));
    CHECK_EQ(mproc_list_len(l), 0);
    char buf[64];
    size_t n;
    CHECK_RC(mproc_list_get(l, 0, buf, sizeof buf, &n), -ERANGE);
    CHECK_RC(mproc_list_pop(l, buf, sizeof buf, &n), -ENOENT);
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "elemento %d", i);
        CHECK_OK(mproc_list_append(l, buf, strlen(buf)));
    }
    CHECK_OK(mproc_list_append(l, NULL, 0));
    CHECK_EQ(mproc_list_len(l), 101);
    for (int i = 0; i < 100; i++) {
        char want[64];
        snprintf(want, sizeof want, "elemento %d", i);
        CHECK_OK(mproc_list_get(l, (size_t)i, buf, sizeof buf, &n));
        CHECK_EQ(n, strlen(want));
        CHECK(memcmp(buf, want, n) == 0);
    }
    CHECK_OK(mproc_list_get(l, 100, NULL, 0, &n));
    CHECK_EQ(n, 0);
    CHECK_RC(mproc_list_get(l, 101, buf, sizeof buf, &n), -ERANGE);
    CHECK_RC(mproc_list_get(l, 5, buf, 3, &n), -EMSGSIZE);
    CHECK_EQ(n, strlen("elemento 5"));
    CHECK_OK(mproc_list_set(l, 5, "cinco", 5));
    CHECK_OK(mproc_list_get(l, 5, buf, sizeof buf, &n));
    CHECK(n == 5 && memcmp(buf, "cinco", 5) == 0);
    CHECK_RC(mproc_list_set(l, 101, "x", 1), -ERANGE);
    /* Pop: too small a buffer removes nothing. */
    CHECK_OK(mproc_list_pop(l, buf, sizeof buf, &n));
    CHECK_EQ(n, 0);
    CHECK_RC(mproc_list_pop(l, buf, 3, &n), -EMSGSIZE);
    CHECK_EQ(mproc_list_len(l), 100);
    CHECK_OK(mproc_list_pop(l, buf, sizeof buf, &n));
    CHECK(n == strlen("elemento 99") && memcmp(buf, "elemento 99", n) == 0);
    CHECK_EQ(mproc_list_len(l), 99);
    CHECK_OK(mproc_list_destroy(l));
}

TEST(list_nospc_and_bad_args)
{
    mproc_list *l = (mproc_list *)1;
    size_t n;
    char buf[4];
    CHECK_RC(mproc_list_create(NULL, NULL), -EINVAL);
    CHECK_RC(mproc_list_append(NULL, "a", 1), -EINVAL);
    CHECK_RC(mproc_list_get(NULL, 0, buf, 4, &n), -EINVAL);
    CHECK_RC(mproc_list_set(NULL, 0, "a", 1), -EINVAL);
    CHECK_RC(mproc_list_pop(NULL, buf, 4, &n), -EINVAL);
    CHECK_EQ(mproc_list_len(NULL), 0);
    CHECK_OK(mproc_list_destroy(NULL));
    CHECK_OK(mproc_list_create(&l, &(mproc_list_opts){ .max_bytes = 64 << 10 }));
    CHECK_RC(mproc_list_append(l, NULL, 1), -EINVAL);
    CHECK_RC(mproc_list_get(l, 0, NULL, 4, &n), -EINVAL);
    CHECK_RC(mproc_list_get(l, 0, buf, 4, NULL), -EINVAL);
    CHECK_RC(mproc_list_pop(l, buf, 4, NULL), -EINVAL);
    static char big[1000];
    int rc = 0;
    size_t count = 0;
    while ((rc = mproc_list_append(l, big, sizeof big)) == 0)
        count++;
    CHECK_RC(rc, -ENOSPC);
    CHECK(count > 10);
    CHECK_EQ(mproc_list_len(l), count);
    CHECK_RC(mproc_list_set(l, 0, big, 100000), -ENOSPC);
    CHECK_OK(mproc_list_pop(l, big, sizeof big, &n));
    CHECK_OK(mproc_list_append(l, big, sizeof big)); /* reused */
    CHECK_EQ(mproc_list_len(l), count);
    CHECK_OK(mproc_list_destroy(l));
}

/* Manager().list() shared by processes that each append their items. */
static int list_child(void *arg)
{
    mproc_list *l = arg;
    for (long i = 0; i < g_iters; i++) {
        long item[2] = { (long)getpid(), i };
        if (mproc_list_append(l, item, sizeof item) != 0)
            return 1;
    }
    return 0;
}

TEST(list_processes)
{
    g_iters = test_scaled_stress(5000);
    mproc_list *l;
    CHECK_OK(mproc_list_create(&l, NULL));
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++)
        pids[i] = test_fork(list_child, l);
    for (int i = 0; i < NPROC; i++)
        test_expect_child_ok(pids[i]);
    CHECK_EQ(mproc_list_len(l), NPROC * g_iters);
    /* Each child's items are all there, in its order. */
    long next[NPROC] = { 0 };
    for (size_t k = 0; k < (size_t)(NPROC * g_iters); k++) {
        long item[2];
        size_t n;
        CHECK_OK(mproc_list_get(l, k, item, sizeof item, &n));
        CHECK_EQ(n, sizeof item);
        int who = -1;
        for (int i = 0; i < NPROC; i++)
            if (pids[i] == (pid_t)item[0])
                who = i;
        CHECK(who >= 0);
        CHECK_EQ(item[1], next[who]);
        next[who]++;
    }
    CHECK_OK(mproc_list_destroy(l));
}

static int list_crash_child(void *arg)
{
    mproc_list *l = arg;
    mproc__fault_arm("list.append.written", 1, mproc__fault_kill_self);
    mproc_list_append(l, "perdido", 7);
    return 1;
}

TEST(list_crash_mid_append)
{
    mproc_list *l;
    CHECK_OK(mproc_list_create(&l, NULL));
    for (int i = 0; i < 16; i++) /* the next append grows the index */
        CHECK_OK(mproc_list_append(l, "a", 1));
    test_expect_child_killed(test_fork(list_crash_child, l));
    CHECK_EQ(mproc_list_len(l), 16);
    CHECK_OK(mproc_list_append(l, "b", 1));
    char buf[8];
    size_t n;
    CHECK_OK(mproc_list_get(l, 16, buf, sizeof buf, &n));
    CHECK(n == 1 && buf[0] == 'b');
    CHECK_EQ(mproc_list_len(l), 17);
    CHECK_OK(mproc_list_destroy(l));
}
