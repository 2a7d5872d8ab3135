/*
 * tools/lab_cow.c -- `mproc lab cow`: copy-on-write after fork, seen in
 * the children's own memory figures.
 *
 * The parent maps an array (32 MiB with --quick, 256 MiB without) in
 * 4 KiB pages (huge pages turned off for it with madvise, so that every
 * figure counts single pages) and fills every page. Then, one at a time,
 * three children started with mproc_process (MPROC_START_FORK) use it:
 *   - a reader reads one byte of every page (and sums them, so it proves
 *     it saw the parent's data);
 *   - a writer writes one byte of every page;
 *   - a sparse writer writes one byte of every 8th page.
 * Each child then tells the parent over a pipe that it is done, and waits
 * (on a second pipe) while the parent reads its memory figures from
 * /proc/CHILD: smaps_rollup (the whole process: Rss, Pss, Shared_*,
 * Private_*) and, in smaps, the same fields for the array's mapping
 * alone, which the lab's verdict uses (the whole process also holds the
 * program, its libraries and, in sanitizer builds, shadow memory that
 * grows as the child reads). The parent's own figures for the array are
 * read while the reader runs.
 *
 * What copy-on-write predicts: the reader's array is all Shared (with
 * the parent), with no Private_Dirty page and a Pss of half the array;
 * the writer's array is all Private_Dirty (each page it wrote was
 * copied); the sparse writer's is one eighth Private_Dirty -- the kernel
 * copies the pages written, one by one, not the array.
 *
 * examples/cow.c is the notes' program on its own (each child prints its
 * own /proc/self/smaps_rollup); this lab measures the same effect from
 * the outside, per mapping, with the figures checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <mproc.h>

#include "lab.h"
#include "procfs.h"
#include "tools.h"

#define WAIT_MS 60000
#define SPARSE_STRIDE 8 /* the sparse writer writes one page in this many */

enum { READER, WRITER, SPARSE, N_CHILDREN };

static const char *const child_key[N_CHILDREN] = { "reader", "writer", "sparse" };
static const char *const child_text[N_CHILDREN] = {
    "reader (reads every page)", "writer (writes every page)", "sparse writer (every 8th page)"
};

/* Memory figures, in kB, as /proc gives them. */
struct mem {
    long rss, pss, shared_clean, shared_dirty, private_clean, private_dirty;
};

/* Sum the fields of the mappings in /proc/PID/FILE (smaps or
 * smaps_rollup) that overlap [lo, hi). 0 or -errno. */
static int read_mem(pid_t pid, const char *file, uintptr_t lo, uintptr_t hi, struct mem *m)
{
    char path[64], line[512];
    if (pid)
        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
    else
        snprintf(path, sizeof path, "/proc/self/%s", file);
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    *m = (struct mem){ 0 };
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long start, end;
        long v;
        char name[32];
        /* A mapping's header: "start-end perms offset dev inode path"
         * (a field line never matches: "AnonHugePages:" stops at 'n'). */
        if (sscanf(line, "%lx-%lx %4s", &start, &end, name) == 3) {
            in = start < hi && end > lo;
            continue;
        }
        if (!in || sscanf(line, "%31[A-Za-z_]: %ld kB", name, &v) != 2)
            continue;
        if (strcmp(name, "Rss") == 0)
            m->rss += v;
        else if (strcmp(name, "Pss") == 0)
            m->pss += v;
        else if (strcmp(name, "Shared_Clean") == 0)
            m->shared_clean += v;
        else if (strcmp(name, "Shared_Dirty") == 0)
            m->shared_dirty += v;
        else if (strcmp(name, "Private_Clean") == 0)
            m->private_clean += v;
        else if (strcmp(name, "Private_Dirty") == 0)
            m->private_dirty += v;
    }
    fclose(f);
    return 0;
}

/* What a child gets (copied into it by mproc_process_create). */
struct cow_arg {
    int kind;
    unsigned char *array; /* the parent's, at the same address after fork */
    size_t size, page;
    int up[2], down[2];   /* up: child -> parent; down: parent -> child */
};

/* What a child reports when it has done its part. */
struct cow_done {
    uint64_t sum;     /* of the bytes it read (reader) */
    uint64_t touched; /* pages it read or wrote */
};

static int cow_child(const void *arg, size_t len, mproc_ctx *ctx)
{
    struct cow_arg a;
    if (len != sizeof a)
        return mproc_fail(ctx, -EINVAL, "argument of %zu bytes", len);
    memcpy(&a, arg, sizeof a);
    close(a.up[0]); /* the parent's ends: its death is our end of file */
    close(a.down[1]);
    struct cow_done d = { 0, 0 };
    size_t pages = a.size / a.page;
    volatile unsigned char *p = a.array;
    for (size_t i = 0; i < pages; i++) {
        if (a.kind == READER) {
            d.sum += p[i * a.page];
            d.touched++;
        } else if (a.kind == WRITER || i % SPARSE_STRIDE == 0) {
            p[i * a.page] = 2;
            d.touched++;
        }
    }
    char go;
    if (mproc__write_all(a.up[1], (const char *)&d, sizeof d) != 0 ||
        mproc__lab_read_full(a.down[0], &go, 1) != 0)
        return mproc_fail(ctx, -EPIPE, "the parent went away");
    return 0;
}

struct child_figures {
    struct cow_done done;
    struct mem array, whole; /* the array's mapping; the whole process */
    struct mem parent_array; /* the parent's array meanwhile */
};

/* Run one child of `kind` and read its figures while it waits. */
static int run_child(int kind, unsigned char *array, size_t size, size_t page,
                     struct child_figures *out)
{
    struct cow_arg a = { kind, array, size, page, { -1, -1 }, { -1, -1 } };
    if (pipe2(a.up, O_CLOEXEC) != 0)
        return -errno;
    if (pipe2(a.down, O_CLOEXEC) != 0) {
        int e = errno;
        close(a.up[0]);
        close(a.up[1]);
        return -e;
    }
    mproc_process *p;
    int rc = mproc__lab_process(&p, MPROC_START_FORK, cow_child, &a, sizeof a);
    close(a.up[1]); /* the child's ends: its death is our end of file */
    close(a.down[0]);
    if (rc == 0 && (rc = mproc__lab_wait_readable(a.up[0], WAIT_MS)) == 0)
        rc = mproc__lab_read_full(a.up[0], &out->done, sizeof out->done);
    if (rc == 0) { /* the child waits for us now, its pages as it left them */
        pid_t pid = mproc_process_pid(p);
        uintptr_t lo = (uintptr_t)array, hi = lo + size;
        rc = read_mem(pid, "smaps", lo, hi, &out->array);
        if (rc == 0)
            rc = read_mem(pid, "smaps_rollup", 0, UINTPTR_MAX, &out->whole);
        if (rc == 0)
            rc = read_mem(0, "smaps", lo, hi, &out->parent_array);
    }
    char go = 'g';
    if (p) {
        if (rc == 0)
            rc = mproc__write_all(a.down[1], &go, 1);
        close(a.down[1]); /* also lets it go if we failed */
        a.down[1] = -1;
        if (mproc__lab_join(p, WAIT_MS) != 0 && rc == 0)
            rc = -ECHILD;
        mproc_process_destroy(p);
    }
    close(a.up[0]);
    if (a.down[1] >= 0)
        close(a.down[1]);
    return rc;
}

static double mib(long kb)
{
    return (double)kb / 1024;
}

static int lab_cow(const mproc__lab_opts *o, mproc__lab_report *r)
{
    size_t size = (size_t)(o->quick ? 32 : 256) << 20;
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = size / page;
    /* Guard pages around the array keep its mapping apart from any other
     * (the kernel merges neighbouring anonymous mappings). */
    unsigned char *base = mmap(NULL, size + 2 * page, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        mproc__lab_note(r, "cannot map %zu MiB", size >> 20);
        return -ENOMEM;
    }
    unsigned char *array = base + page;
    mprotect(base, page, PROT_NONE);
    mprotect(array + size, page, PROT_NONE);
    madvise(array, size, MADV_NOHUGEPAGE); /* may fail where there are no huge pages */
    mproc__progress("lab cow: filling %zu MiB", size >> 20);
    memset(array, 1, size); /* the parent loads its data before the children */
    struct mem before;
    int rc = read_mem(0, "smaps", (uintptr_t)array, (uintptr_t)array + size, &before);

    struct child_figures c[N_CHILDREN];
    memset(c, 0, sizeof c);
    for (int k = 0; k < N_CHILDREN && rc == 0; k++) {
        mproc__progress("lab cow: %s", child_text[k]);
        rc = run_child(k, array, size, page, &c[k]);
        if (rc != 0)
            mproc__lab_note(r, "the %s failed: %s", child_text[k], mproc_strerror(rc));
    }
    /* The children wrote their copies: the parent's data is unchanged. */
    bool intact = true;
    for (size_t i = 0; i < pages && rc == 0; i++)
        intact = intact && array[i * page] == 1;
    munmap(base, size + 2 * page);
    if (rc != 0)
        return rc;

    double size_mib = (double)(size >> 20);
    size_t sparse_pages = (pages + SPARSE_STRIDE - 1) / SPARSE_STRIDE;
    mproc__lab_metric(r, "array_mib", size_mib, "MiB", "array filled by the parent");
    mproc__lab_metric(r, "pages", (double)pages, "count", "  pages of it");
    mproc__lab_metric(r, "page_kib", (double)page / 1024, "KiB", "  page size");
    mproc__lab_metric(r, "parent_private_dirty_mib", mib(before.private_dirty), "MiB",
                      "  parent's Private_Dirty before fork");
    for (int k = 0; k < N_CHILDREN; k++) {
        const struct child_figures *f = &c[k];
        char key[48];
        mproc__lab_metric(r, child_key[k], (double)f->done.touched, "count", child_text[k]);
#define FIG(suffix, value, text)                                                         \
    do {                                                                                 \
        snprintf(key, sizeof key, "%s_%s", child_key[k], suffix);                        \
        mproc__lab_metric(r, key, value, "MiB", text);                                   \
    } while (0)
        FIG("array_rss_mib", mib(f->array.rss), "  array: Rss");
        FIG("array_pss_mib", mib(f->array.pss), "  array: Pss");
        FIG("array_shared_mib", mib(f->array.shared_clean + f->array.shared_dirty),
            "  array: Shared_Clean + Shared_Dirty");
        FIG("array_private_dirty_mib", mib(f->array.private_dirty), "  array: Private_Dirty");
        FIG("private_dirty_mib", mib(f->whole.private_dirty),
            "  whole process: Private_Dirty");
#undef FIG
    }
    mproc__lab_metric(r, "reader_sum_ok", c[READER].done.sum == pages, "bool",
                      "the reader saw the parent's data");
    mproc__lab_metric(r, "parent_array_shared_mib",
                      mib(c[READER].parent_array.shared_clean +
                          c[READER].parent_array.shared_dirty),
                      "MiB", "parent's array shared, while the reader ran");
    mproc__lab_metric(r, "writer_pages_copied",
                      (double)c[WRITER].array.private_dirty * 1024 / (double)page, "count",
                      "pages copied for the writer");
    mproc__lab_metric(r, "sparse_pages_written", (double)sparse_pages, "count",
                      "pages the sparse writer wrote");
    mproc__lab_metric(r, "sparse_pages_copied",
                      (double)c[SPARSE].array.private_dirty * 1024 / (double)page, "count",
                      "pages copied for the sparse writer");
    mproc__lab_metric(r, "parent_data_intact", intact, "bool",
                      "the parent still sees its own data");

    mproc__lab_note(r, "Figures of the array's mapping come from /proc/CHILD/smaps, read while "
                       "the child waits; 'whole process' from smaps_rollup.");
    mproc__lab_note(r, "The reader's array counts half in its Pss: the parent holds the other "
                       "half of the same pages.");

    /* The criterion: reader under 10% private, writer over 90% private,
     * sparse writer within 10% of the pages it wrote. */
    double reader_priv = mib(c[READER].array.private_dirty) / size_mib;
    double writer_priv = mib(c[WRITER].array.private_dirty) / size_mib;
    double sparse_copied = (double)c[SPARSE].array.private_dirty * 1024 / (double)page;
    bool shared = reader_priv < 0.10 && c[READER].done.sum == pages;
    bool copied = writer_priv >= 0.90;
    bool per_page = sparse_copied >= 0.9 * (double)sparse_pages &&
                    sparse_copied <= 1.1 * (double)sparse_pages;
    mproc__lab_verdict(r, shared && copied && per_page && intact,
                       "the reader shared the %.0f MiB (%.1f MiB private); the writer got %.0f "
                       "MiB of private copies; writing 1 page in %d copied %.0f of %zu pages "
                       "(criteria: <10%%, >90%%, within 10%%)",
                       size_mib, mib(c[READER].array.private_dirty),
                       mib(c[WRITER].array.private_dirty), SPARSE_STRIDE, sparse_copied,
                       sparse_pages);
    return 0;
}

int mproc__lab_cow(const mproc__lab_opts *o, mproc__lab_report *r)
{
    /* A child that dies would make our next write to its pipe raise
     * SIGPIPE: let the write fail instead, and the lab say so. */
    struct sigaction old;
    int rc = mproc__lab_ignore_sigpipe(&old);
    if (rc != 0)
        return rc;
    rc = lab_cow(o, r);
    mproc__lab_restore_sigpipe(&old);
    return rc;
}
