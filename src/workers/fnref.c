/*
 * workers/fnref.c -- function addresses that cross into a child process
 * (fnref.h explains the references and their table).
 *
 * Concurrency. The snapshot is built outside any lock and installed once
 * with a compare-and-swap of `own` (release; readers load it with
 * acquire), then never changes. The address cache is guarded by
 * cache_lock, held for a lookup or a store only, never across
 * dl_iterate_phdr (which takes the loader's lock); a fork child resets it,
 * as the forking thread may not be the one holding it. The adopted table
 * is written once, before the spawned child runs anything else, and only
 * read afterwards.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mproc/os.h"
#include "os/atomic.h"
#include "os/sys.h"
#include "sync/mutex.h"
#include "workers/fnref.h"

#define TABLE_MAGIC 0x6d706674u /* "mpft" */
#define ID_MAX 32               /* build-id bytes kept (GNU ids are 20) */
#define INDEX_SHIFT 48
#define OFFSET_MASK (((uint64_t)1 << INDEX_SHIFT) - 1)
#define MAX_OBJECTS 0xfffeu     /* index + 1 must fit in 16 bits */
#define CACHE_SLOTS 256         /* a power of two */

/* ---- what every object has ----------------------------------------------- */

/* The object's GNU build-id (up to ID_MAX bytes) into out; its length,
 * or 0 if it has none. Reads the notes from the mapped image. */
static size_t build_id(const struct dl_phdr_info *info, unsigned char *out)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        size_t align = ph->p_align == 8 ? 8 : 4;
        const unsigned char *p = (const unsigned char *)(info->dlpi_addr + ph->p_vaddr);
        size_t left = ph->p_memsz;
        while (left >= sizeof(ElfW(Nhdr))) {
            ElfW(Nhdr) nh;
            memcpy(&nh, p, sizeof nh);
            if (nh.n_namesz > left || nh.n_descsz > left)
                break;
            size_t nsz = (nh.n_namesz + align - 1) & ~(align - 1);
            size_t dsz = (nh.n_descsz + align - 1) & ~(align - 1);
            if (nsz + dsz > left - sizeof nh)
                break;
            if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                memcmp(p + sizeof nh, "GNU", 4) == 0) {
                size_t len = nh.n_descsz < ID_MAX ? nh.n_descsz : ID_MAX;
                memcpy(out, p + sizeof nh + nsz, len);
                return len;
            }
            p += sizeof nh + nsz + dsz;
            left -= sizeof nh + nsz + dsz;
        }
    }
    return 0;
}

/* The lowest and highest code address of the object (its executable
 * PT_LOAD segments); false if it has no code. */
static bool code_span(const struct dl_phdr_info *info, uintptr_t *lo, uintptr_t *hi)
{
    bool any = false;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
        if (!any || a < *lo)
            *lo = a;
        if (!any || b > *hi)
            *hi = b;
        any = true;
    }
    return any;
}

static const char *shown(const char *name)
{
    return name[0] ? name : "the program";
}

static void say(char *why, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *why, size_t n, const char *fmt, ...)
{
    if (!why || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, n, fmt, ap);
    va_end(ap);
}

/* ---- the parent's snapshot ---------------------------------------------- */

struct obj {
    char *name;
    uintptr_t base;
};

struct snapshot {
    struct obj *objs;
    size_t n;
    unsigned char *table; /* what a spawned child is sent */
    size_t table_len;
};

static struct snapshot *own; /* installed once (CAS), then read-only */

struct collect {
    struct snapshot *s;
    size_t cap;
    unsigned char *ids;  /* ID_MAX bytes per object */
    size_t *id_lens;
    bool oom;
};

static int collect_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct collect *c = arg;
    struct snapshot *s = c->s;
    if (s->n == MAX_OBJECTS)
        return 0; /* the rest count as loaded later */
    if (s->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 32;
        struct obj *o = realloc(s->objs, cap * sizeof *o);
        if (o)
            s->objs = o;
        unsigned char *ids = o ? realloc(c->ids, cap * ID_MAX) : NULL;
        if (ids)
            c->ids = ids;
        size_t *lens = ids ? realloc(c->id_lens, cap * sizeof *lens) : NULL;
        if (!lens) {
            c->oom = true;
            return 1;
        }
        c->id_lens = lens;
        c->cap = cap;
    }
    char *name = strdup(info->dlpi_name ? info->dlpi_name : "");
    if (!name) {
        c->oom = true;
        return 1;
    }
    s->objs[s->n] = (struct obj){ name, info->dlpi_addr };
    c->id_lens[s->n] = build_id(info, c->ids + s->n * ID_MAX);
    s->n++;
    return 0;
}

static void put32(unsigned char **p, uint32_t v)
{
    memcpy(*p, &v, sizeof v);
    *p += sizeof v;
}

static void snapshot_free(struct snapshot *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->objs[i].name);
    free(s->objs);
    free(s->table);
    free(s);
}

/* The snapshot (fnref.h), taken on first use; NULL when out of memory. */
static struct snapshot *snapshot(void)
{
    struct snapshot *s = __atomic_load_n(&own, __ATOMIC_ACQUIRE);
    if (s)
        return s;
    s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    struct collect c = { .s = s };
    dl_iterate_phdr(collect_cb, &c);
    size_t len = 8;
    for (size_t i = 0; !c.oom && i < s->n; i++)
        len += 8 + strlen(s->objs[i].name) + c.id_lens[i];
    if (!c.oom && (s->table = malloc(len))) {
        unsigned char *p = s->table;
        put32(&p, TABLE_MAGIC);
        put32(&p, (uint32_t)s->n);
        for (size_t i = 0; i < s->n; i++) {
            size_t nl = strlen(s->objs[i].name);
            put32(&p, (uint32_t)nl);
            put32(&p, (uint32_t)c.id_lens[i]);
            memcpy(p, s->objs[i].name, nl);
            p += nl;
            memcpy(p, c.ids + i * ID_MAX, c.id_lens[i]);
            p += c.id_lens[i];
        }
        s->table_len = len;
    }
    free(c.ids);
    free(c.id_lens);
    if (!s->table) {
        snapshot_free(s);
        return NULL;
    }
    struct snapshot *none = NULL;
    if (!__atomic_compare_exchange_n(&own, &none, s, false, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE)) {
        snapshot_free(s); /* another thread installed one first */
        return none;
    }
    return s;
}

int mproc__fnref_table(const void **buf, size_t *len)
{
    const struct snapshot *s = snapshot();
    if (!s)
        return -ENOMEM;
    *buf = s->table;
    *len = s->table_len;
    return 0;
}

/* ---- encoding --------------------------------------------------------------- */

static uint32_t cache_lock = MPROC__MUTEX_INIT;
static struct {
    uintptr_t addr; /* 0: empty */
    uint64_t word;
} cache[CACHE_SLOTS];

static size_t cache_slot(uintptr_t a)
{
    return (size_t)(((uint64_t)a * 0x9e3779b97f4a7c15u) >> 56) & (CACHE_SLOTS - 1);
}

static void fork_prepare(void)
{
    mproc__mutex_lock(&cache_lock);
}

static void fork_parent(void)
{
    mproc__mutex_unlock(&cache_lock);
}

static void fork_child(void)
{
    cache_lock = MPROC__MUTEX_INIT;
}

/* At load time, before the program can have threads (see exec/pool.c). */
MPROC__EARLY_INIT static void fnref_init(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

struct find {
    uintptr_t addr;
    const struct snapshot *s;
    bool found;
    long index;     /* in s, or -1 */
    uintptr_t base;
    char name[MPROC__FNREF_WHY / 2];
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct find *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X) || f->addr < lo ||
            f->addr - lo >= ph->p_memsz)
            continue;
        const char *name = info->dlpi_name ? info->dlpi_name : "";
        f->found = true;
        f->base = info->dlpi_addr;
        snprintf(f->name, sizeof f->name, "%s", shown(name));
        for (size_t k = 0; k < f->s->n; k++)
            if (f->s->objs[k].base == info->dlpi_addr && strcmp(f->s->objs[k].name, name) == 0) {
                f->index = (long)k;
                break;
            }
        return 1;
    }
    return 0;
}

int mproc__fnref_encode(const void *addr, bool ref, uint64_t *word, char *why, size_t n)
{
    uintptr_t a = (uintptr_t)addr;
    if (!ref) {
        *word = (uint64_t)a;
        return 0;
    }
    if (why && n > 0)
        why[0] = '\0';
    size_t slot = cache_slot(a);
    mproc__mutex_lock(&cache_lock);
    bool hit = a != 0 && cache[slot].addr == a;
    if (hit)
        *word = cache[slot].word;
    mproc__mutex_unlock(&cache_lock);
    if (hit)
        return 0;
    const struct snapshot *s = snapshot();
    if (!s)
        return -ENOMEM;
    struct find f = { .addr = a, .s = s, .index = -1 };
    dl_iterate_phdr(find_cb, &f);
    if (!f.found) {
        say(why, n, "function %p is in the code of no loaded object", addr);
        return MPROC_ENOSYMBOL;
    }
    if (f.index < 0) {
        say(why, n,
            "function %p is in %s, which was loaded at run time (dlopen): "
            "a spawned process does not have it", addr, f.name);
        return MPROC_ENOSYMBOL;
    }
    *word = ((uint64_t)(f.index + 1) << INDEX_SHIFT) | ((uint64_t)(a - f.base) & OFFSET_MASK);
    mproc__mutex_lock(&cache_lock);
    cache[slot].addr = a;
    cache[slot].word = *word;
    mproc__mutex_unlock(&cache_lock);
    return 0;
}

/* ---- the child's side -------------------------------------------------------- */

enum { P_ABSENT, P_HERE, P_OTHER_BUILD };

struct peer {
    char *name;
    unsigned char id[ID_MAX];
    size_t id_len;
    int state;
    uintptr_t base, lo, hi; /* here: load address, code span */
};

static struct peer *peers; /* the parent's objects, as found here */
static size_t npeers;
static bool adopted;

static bool get32(const unsigned char **p, const unsigned char *end, uint32_t *v)
{
    if ((size_t)(end - *p) < sizeof *v)
        return false;
    memcpy(v, *p, sizeof *v);
    *p += sizeof *v;
    return true;
}

static int match_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    for (size_t i = 0; i < npeers; i++) {
        struct peer *p = &peers[i];
        if (p->state != P_ABSENT || strcmp(p->name, name) != 0)
            continue;
        unsigned char id[ID_MAX];
        size_t id_len = build_id(info, id);
        uintptr_t lo = 0, hi = 0;
        if (!code_span(info, &lo, &hi))
            continue;
        bool same = p->id_len == 0 || id_len == 0 ||
                    (p->id_len == id_len && memcmp(p->id, id, id_len) == 0);
        p->state = same ? P_HERE : P_OTHER_BUILD;
        p->base = info->dlpi_addr;
        p->lo = lo;
        p->hi = hi;
        break;
    }
    return 0;
}

int mproc__fnref_adopt(const void *buf, size_t len)
{
    const unsigned char *p = buf, *end = p + len;
    uint32_t magic, n;
    if (!buf || len > MPROC__FNREF_TABLE_MAX || !get32(&p, end, &magic) ||
        magic != TABLE_MAGIC || !get32(&p, end, &n) || n > MAX_OBJECTS || adopted)
        return -EPROTO;
    struct peer *ps = calloc(n ? n : 1, sizeof *ps);
    if (!ps)
        return -ENOMEM;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        uint32_t nl, il;
        if (!get32(&p, end, &nl) || !get32(&p, end, &il) || il > ID_MAX ||
            (size_t)(end - p) < (size_t)nl + il) {
            rc = -EPROTO;
            break;
        }
        if (!(ps[i].name = malloc((size_t)nl + 1))) {
            rc = -ENOMEM;
            break;
        }
        memcpy(ps[i].name, p, nl);
        ps[i].name[nl] = '\0';
        memcpy(ps[i].id, p + nl, il);
        ps[i].id_len = il;
        ps[i].state = P_ABSENT;
        p += (size_t)nl + il;
    }
    if (rc != 0) {
        for (uint32_t i = 0; i < n; i++)
            free(ps[i].name);
        free(ps);
        return rc;
    }
    peers = ps;
    npeers = n;
    adopted = true;
    dl_iterate_phdr(match_cb, NULL);
    return 0;
}

int mproc__fnref_decode(uint64_t word, bool ref, void **addr, char *why, size_t n)
{
    if (!ref) {
        *addr = (void *)(uintptr_t)word;
        return 0;
    }
    uint64_t k = word >> INDEX_SHIFT, off = word & OFFSET_MASK;
    if (!adopted) {
        say(why, n, "function reference %#llx: this process has no table of its parent's "
                    "objects (it was not spawned)", (unsigned long long)word);
        return MPROC_ENOSYMBOL;
    }
    if (k == 0 || k > npeers) {
        say(why, n, "function reference %#llx names no object of the parent's table",
            (unsigned long long)word);
        return MPROC_ENOSYMBOL;
    }
    const struct peer *p = &peers[k - 1];
    if (p->state == P_ABSENT) {
        say(why, n, "function is in %s, which is not loaded in this spawned process "
                    "(the parent loaded it with dlopen?)", shown(p->name));
        return MPROC_ENOSYMBOL;
    }
    if (p->state == P_OTHER_BUILD) {
        say(why, n, "function is in %s, which is another build here than in the parent "
                    "(rebuilt since the parent started?)", shown(p->name));
        return MPROC_ENOSYMBOL;
    }
    uintptr_t a = p->base + (uintptr_t)off;
    if (a < p->lo || a >= p->hi) {
        say(why, n, "function at offset %#llx is outside the code of %s here",
            (unsigned long long)off, shown(p->name));
        return MPROC_ENOSYMBOL;
    }
    *addr = (void *)a;
    return 0;
}
