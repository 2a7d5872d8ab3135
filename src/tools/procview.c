/*
 * tools/procview.c -- what `mproc ps` and `mproc top` share once /proc is
 * read (procfs.c): the options that choose and order processes, the rows
 * they give (filtered, sorted, as a tree), the table, the JSON, user
 * names, and a growing text buffer to build output in.
 *
 * Filters combine with AND; several --pid values with OR. The tree puts
 * each selected process under its parent when the parent is selected
 * too, else at the top level ("orphans of the filter"); siblings keep the
 * sort order. Names are raw bytes from the kernel: the table shows
 * control characters and broken UTF-8 as '?', so no process can send
 * escape sequences to the terminal through its name; the JSON escapes
 * them and replaces broken UTF-8 by U+FFFD, so the document stays valid.
 */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procfs.h"
#include "tools.h"

/* ------------------------------------------------------------------ */
/* the text buffer                                                     */
/* ------------------------------------------------------------------ */

static bool buf_reserve(mproc__buf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap == 0 ? 4096 : b->cap;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL) {
        b->failed = true;
        return false;
    }
    b->data = d;
    b->cap = cap;
    return true;
}

void mproc__buf_put(mproc__buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mproc__buf_puts(mproc__buf *b, const char *s)
{
    mproc__buf_put(b, s, strlen(s));
}

void mproc__buf_printf(mproc__buf *b, const char *fmt, ...)
{
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        mproc__buf_put(b, small, (size_t)n);
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void mproc__buf_free(mproc__buf *b)
{
    free(b->data);
    *b = (mproc__buf){ .data = NULL };
}

int mproc__write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* names: UTF-8, JSON, the terminal                                    */
/* ------------------------------------------------------------------ */

/* The length of the well-formed UTF-8 sequence at s (at most n bytes),
 * its code point in *cp; 0 if it is not one (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_next(const unsigned char *s, size_t n, unsigned *cp)
{
    if (n == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len;
    unsigned c, min;
    if ((s[0] & 0xE0) == 0xC0) {
        len = 2, c = s[0] & 0x1Fu, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        len = 3, c = s[0] & 0x0Fu, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        len = 4, c = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return len;
}

void mproc__json_string(mproc__buf *b, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    mproc__buf_put(b, "\"", 1);
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = utf8_next(u + i, len - i, &cp);
        if (n == 0) {
            mproc__buf_puts(b, "\\ufffd");
            i++;
            continue;
        }
        if (cp == '"' || cp == '\\') {
            char esc[2] = { '\\', (char)cp };
            mproc__buf_put(b, esc, 2);
        } else if (cp == '\n') {
            mproc__buf_puts(b, "\\n");
        } else if (cp == '\t') {
            mproc__buf_puts(b, "\\t");
        } else if (cp < 0x20 || cp == 0x7F) {
            mproc__buf_printf(b, "\\u%04x", cp);
        } else {
            mproc__buf_put(b, s + i, n);
        }
        i += n;
    }
    mproc__buf_put(b, "\"", 1);
}

/* s as the terminal may show it: control characters (C0, DEL, C1) and
 * broken UTF-8 become '?'. */
static void terminal_text(mproc__buf *b, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        unsigned cp;
        size_t n = utf8_next(u + i, len - i, &cp);
        if (n == 0 || cp < 0x20 || (cp >= 0x7F && cp < 0xA0)) {
            mproc__buf_put(b, "?", 1);
            i += n == 0 ? 1 : n;
        } else {
            mproc__buf_put(b, s + i, n);
            i += n;
        }
    }
}

/* ------------------------------------------------------------------ */
/* user names                                                          */
/* ------------------------------------------------------------------ */

struct user {
    long long uid;
    char *name;
};

/* Users seen so far; the command's main thread is the only one. */
static struct user *users;
static size_t nusers, users_cap;

/* Look uid up in the user database: a malloc'd name, or NULL. */
static char *lookup_user(long long uid)
{
    size_t size = 16384;
    for (;;) {
        char *mem = malloc(size);
        if (mem == NULL)
            return NULL;
        struct passwd pw, *found = NULL;
        int rc = getpwuid_r((uid_t)uid, &pw, mem, size, &found);
        if (rc == ERANGE && size < ((size_t)1 << 20)) {
            free(mem);
            size *= 2;
            continue;
        }
        char *name = rc == 0 && found != NULL ? strdup(found->pw_name) : NULL;
        free(mem);
        return name;
    }
}

const char *mproc__user_name(long long uid)
{
    if (uid < 0)
        return "?";
    for (size_t i = 0; i < nusers; i++)
        if (users[i].uid == uid)
            return users[i].name;
    if (nusers == users_cap) {
        size_t cap = users_cap == 0 ? 16 : 2 * users_cap;
        struct user *u = realloc(users, cap * sizeof *u);
        if (u == NULL)
            return "?";
        users = u;
        users_cap = cap;
    }
    char *name = lookup_user(uid);
    if (name == NULL) {
        char num[24];
        snprintf(num, sizeof num, "%lld", uid);
        name = strdup(num);
        if (name == NULL)
            return "?";
    }
    users[nusers++] = (struct user){ .uid = uid, .name = name };
    return name;
}

/* ------------------------------------------------------------------ */
/* options                                                             */
/* ------------------------------------------------------------------ */

static const char *const sort_names[] = {
    [MPROC__SORT_PID] = "pid",       [MPROC__SORT_CPU] = "cpu",
    [MPROC__SORT_RSS] = "rss",       [MPROC__SORT_THREADS] = "threads",
    [MPROC__SORT_NAME] = "name",     [MPROC__SORT_STATE] = "state",
    [MPROC__SORT_USER] = "user",
};

#define N_SORTS (sizeof sort_names / sizeof sort_names[0])

/* The states proc(5) lists (X and x dead, K wakekill, W waking/paging,
 * P parked, I idle). */
static const char valid_states[] = "RSDZTtXxKWPI";

const char *mproc__sort_name(mproc__sort_key k)
{
    return (size_t)k < N_SORTS ? sort_names[k] : "?";
}

static int view_error(const char *cmd, const char *what, const char *arg)
{
    fprintf(stderr, "mproc %s: %s '%s' (see 'mproc help %s')\n", cmd, what, arg, cmd);
    return MPROC_TOOL_USAGE;
}

/* "12,34,5" added to v->pids. */
static int parse_pids(const char *cmd, const char *text, mproc__view *v)
{
    const char *c = text;
    for (;;) {
        const char *comma = strchr(c, ',');
        size_t n = comma != NULL ? (size_t)(comma - c) : strlen(c);
        char one[16];
        unsigned pid;
        if (n == 0 || n >= sizeof one)
            return view_error(cmd, "--pid takes process ids like 12 or 12,34, not", text);
        memcpy(one, c, n);
        one[n] = '\0';
        if (mproc__parse_count(one, INT32_MAX, &pid) < 0)
            return view_error(cmd, "--pid takes process ids like 12 or 12,34, not", text);
        if (v->npids == MPROC__VIEW_MAX_PIDS)
            return view_error(cmd, "at most 64 process ids; too many at", text);
        v->pids[v->npids++] = (int)pid;
        if (comma == NULL)
            return 0;
        c = comma + 1;
    }
}

/* A user name or number into v->uid. */
static int parse_user(const char *cmd, const char *text, mproc__view *v)
{
    unsigned num;
    if (text[0] == '0' && text[1] == '\0') {
        v->uid = 0;
    } else if (mproc__parse_count(text, UINT32_MAX - 1, &num) == 0) {
        v->uid = num;
    } else {
        size_t size = 16384;
        char *mem = malloc(size);
        struct passwd pw, *found = NULL;
        int rc = mem != NULL ? getpwnam_r(text, &pw, mem, size, &found) : ENOMEM;
        if (rc == 0 && found != NULL)
            v->uid = found->pw_uid;
        free(mem);
        if (rc != 0 || found == NULL)
            return view_error(cmd, "--user takes a user name or number; no user", text);
    }
    v->by_user = true;
    return 0;
}

static int parse_states(const char *cmd, const char *text, mproc__view *v)
{
    size_t n = strlen(text);
    if (n == 0 || n >= sizeof v->states)
        return view_error(cmd, "--state takes state letters like Z or RD, not", text);
    for (size_t i = 0; i < n; i++)
        if (strchr(valid_states, text[i]) == NULL)
            return view_error(cmd, "--state takes letters of RSDZTtXxKWPI, not", text);
    memcpy(v->states, text, n + 1);
    return 0;
}

static int parse_sort(const char *cmd, const char *text, mproc__view *v)
{
    for (size_t k = 0; k < N_SORTS; k++)
        if (strcmp(text, sort_names[k]) == 0) {
            v->sort = (mproc__sort_key)k;
            return 0;
        }
    if (strcmp(text, "mem") == 0) {
        v->sort = MPROC__SORT_RSS;
        return 0;
    }
    return view_error(cmd, "--sort takes pid, cpu, rss, threads, name, state or user, not",
                      text);
}

/* If argv[*i] is `name` (or `short_name`), with its value after '=' or
 * in the next argument: *value and true. *rc = usage error when the
 * value is missing. */
static bool option_value(const char *cmd, int argc, char **argv, int *i, const char *name,
                         const char *short_name, const char **value, int *rc)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    *rc = 0;
    if (strncmp(a, name, n) == 0 && a[n] == '=') {
        *value = a + n + 1;
        return true;
    }
    if (strcmp(a, name) != 0 && (short_name == NULL || strcmp(a, short_name) != 0))
        return false;
    if (*i + 1 >= argc) {
        *rc = view_error(cmd, "a value must follow", a);
        return true;
    }
    *value = argv[++*i];
    return true;
}

int mproc__view_option(const char *cmd, int argc, char **argv, int *i, mproc__view *v)
{
    const char *a = argv[*i], *val = NULL;
    int rc = 0;
    if (strcmp(a, "--json") == 0)
        v->json = true;
    else if (strcmp(a, "--tree") == 0)
        v->tree = true;
    else if (strcmp(a, "-T") == 0 || strcmp(a, "--threads") == 0)
        v->threads = true;
    else if (strcmp(a, "-r") == 0 || strcmp(a, "--reverse") == 0)
        v->reverse = true;
    else if (strcmp(a, "--no-cpu") == 0)
        v->no_cpu = true;
    else if (option_value(cmd, argc, argv, i, "--pid", "-p", &val, &rc))
        return rc != 0 ? rc : parse_pids(cmd, val, v) != 0 ? MPROC_TOOL_USAGE : 1;
    else if (option_value(cmd, argc, argv, i, "--user", "-u", &val, &rc))
        return rc != 0 ? rc : parse_user(cmd, val, v) != 0 ? MPROC_TOOL_USAGE : 1;
    else if (option_value(cmd, argc, argv, i, "--state", NULL, &val, &rc))
        return rc != 0 ? rc : parse_states(cmd, val, v) != 0 ? MPROC_TOOL_USAGE : 1;
    else if (option_value(cmd, argc, argv, i, "--sort", "-s", &val, &rc))
        return rc != 0 ? rc : parse_sort(cmd, val, v) != 0 ? MPROC_TOOL_USAGE : 1;
    else if (option_value(cmd, argc, argv, i, "--name", NULL, &val, &rc)) {
        if (rc != 0)
            return rc;
        if (strlen(val) >= sizeof v->name)
            return view_error(cmd, "--name takes at most 63 bytes, not", val);
        memcpy(v->name, val, strlen(val) + 1);
    } else
        return 0;
    return 1;
}

void mproc__view_usage(FILE *out, const char *default_sort, bool no_cpu)
{
    fprintf(out,
            "which processes (filters combine; a process must pass all):\n"
            "  -p, --pid N[,N...]  only these process ids (repeatable, up to 64)\n"
            "  --name TEXT         only processes whose name contains TEXT (any case)\n"
            "  -u, --user USER     only processes of USER, a name or a number (the\n"
            "                      effective user id, as ps shows it)\n"
            "  --state LETTERS     only processes in one of these states, e.g. Z for\n"
            "                      zombies, RD for running or in disk sleep\n"
            "\n"
            "how:\n"
            "  -s, --sort KEY      order by KEY: pid, name, state and user go up;\n"
            "                      cpu, rss (or mem) and threads go down, the largest\n"
            "                      first; ties by pid (default: %s)\n"
            "  -r, --reverse       the other order\n"
            "  --tree              each process under its parent (indented), siblings\n"
            "                      sorted; a process whose parent is filtered out is at\n"
            "                      the top level\n"
            "  -T, --threads       also each thread of each process (tid, its own name,\n"
            "                      state and CPU%%), under the process\n"
            "%s"
            "  --json              JSON on stdout instead of the table\n"
            "  -h, --help          print this help\n",
            default_sort,
            no_cpu ? "  --no-cpu            do not measure CPU% (no 0.2 s wait; shown as '-',\n"
                     "                      null in JSON)\n"
                   : "");
}

/* ------------------------------------------------------------------ */
/* rows: filter, sort, tree                                            */
/* ------------------------------------------------------------------ */

static bool selected(const mproc__view *v, const mproc__proc *p)
{
    if (v->npids > 0) {
        bool found = false;
        for (size_t i = 0; i < v->npids && !found; i++)
            found = v->pids[i] == p->pid;
        if (!found)
            return false;
    }
    if (v->name[0] != '\0' && strcasestr(p->name, v->name) == NULL)
        return false;
    if (v->by_user && p->uid != v->uid)
        return false;
    if (v->states[0] != '\0' && strchr(v->states, p->state) == NULL)
        return false;
    return true;
}

/* The view qsort compares with (qsort takes no context; the command is
 * single-threaded). */
static const mproc__view *sort_view;

static int cmp_values(double a, double b)
{
    return (a > b) - (a < b);
}

static int cmp_rows(const void *x, const void *y)
{
    const mproc__proc *a = *(const mproc__proc *const *)x;
    const mproc__proc *b = *(const mproc__proc *const *)y;
    int c = 0;
    switch (sort_view->sort) {
    case MPROC__SORT_PID: break;
    case MPROC__SORT_CPU: c = -cmp_values(a->cpu_percent, b->cpu_percent); break;
    case MPROC__SORT_RSS: c = -cmp_values((double)a->rss_kib, (double)b->rss_kib); break;
    case MPROC__SORT_THREADS: c = -cmp_values(a->threads, b->threads); break;
    case MPROC__SORT_NAME: c = strcasecmp(a->name, b->name); break;
    case MPROC__SORT_STATE: c = (a->state > b->state) - (a->state < b->state); break;
    case MPROC__SORT_USER:
        c = strcmp(mproc__user_name(a->uid), mproc__user_name(b->uid));
        break;
    }
    if (c == 0)
        c = (a->pid > b->pid) - (a->pid < b->pid);
    return sort_view->reverse ? -c : c;
}

/* Append p's row, and its threads' rows when asked (all but the main
 * thread, which the process row stands for). */
static void add_rows(const mproc__view *v, const mproc__proc *p, int depth, mproc__row *rows,
                     size_t *n)
{
    rows[(*n)++] = (mproc__row){ .p = p, .t = NULL, .depth = depth };
    if (!v->threads)
        return;
    for (size_t k = 0; k < p->ntasks; k++)
        if (p->tasks[k].tid != p->pid)
            rows[(*n)++] = (mproc__row){ .p = p, .t = &p->tasks[k], .depth = depth + 1 };
}

/* Tree order: sel[0..n) sorted; each goes under its parent when the
 * parent is among them. Children lists keep the sorted order; a process
 * reached by no root (a cycle, from pids reused while scanning) is
 * shown as a root, so every one appears exactly once. */
static int tree_rows(const mproc__view *v, const mproc__proc_list *l, const mproc__proc **sel,
                     size_t n, mproc__row *rows, size_t *nrows)
{
    /* pos[i]: the position in sel of l->procs[i], or SIZE_MAX. */
    size_t *pos = malloc(l->count * sizeof *pos);
    size_t *first = malloc(n * sizeof *first), *last = malloc(n * sizeof *last);
    size_t *next = malloc(n * sizeof *next), *stack = malloc(n * sizeof *stack);
    int *depth = malloc(n * sizeof *depth);
    bool *done = calloc(n, sizeof *done), *child = calloc(n, sizeof *child);
    int rc = 0;
    if (pos == NULL || first == NULL || last == NULL || next == NULL || stack == NULL ||
        depth == NULL || done == NULL || child == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < l->count; i++)
        pos[i] = SIZE_MAX;
    for (size_t s = 0; s < n; s++) {
        pos[sel[s] - l->procs] = s;
        first[s] = last[s] = next[s] = SIZE_MAX;
    }
    for (size_t s = 0; s < n; s++) {
        const mproc__proc *parent = sel[s]->ppid != sel[s]->pid
                                        ? mproc__proc_find(l, sel[s]->ppid) : NULL;
        size_t ps = parent != NULL ? pos[parent - l->procs] : SIZE_MAX;
        if (ps == SIZE_MAX)
            continue;
        child[s] = true;
        if (first[ps] == SIZE_MAX)
            first[ps] = s;
        else
            next[last[ps]] = s;
        last[ps] = s;
    }
    /* Roots first, in order; then whatever no root reached. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t r = 0; r < n; r++) {
            if (done[r] || (pass == 0 && child[r]))
                continue;
            size_t top = 0;
            stack[top++] = r;
            depth[r] = 0;
            done[r] = true;
            while (top > 0) {
                size_t s = stack[--top];
                add_rows(v, sel[s], depth[s], rows, nrows);
                /* Push the children last-first, so the first pops first. */
                size_t kids = 0;
                for (size_t c = first[s]; c != SIZE_MAX; c = next[c])
                    if (!done[c])
                        kids++;
                size_t base = top;
                top += kids;
                size_t k = 0;
                for (size_t c = first[s]; c != SIZE_MAX; c = next[c]) {
                    if (done[c])
                        continue;
                    done[c] = true;
                    depth[c] = depth[s] + 1;
                    stack[base + kids - 1 - k++] = c;
                }
            }
        }
    }
out:
    free(pos);
    free(first);
    free(last);
    free(next);
    free(stack);
    free(depth);
    free(done);
    free(child);
    return rc;
}

int mproc__view_rows(const mproc__view *v, const mproc__proc_list *l, mproc__row **rows,
                     size_t *nrows)
{
    *rows = NULL;
    *nrows = 0;
    const mproc__proc **sel = malloc((l->count + 1) * sizeof *sel);
    if (sel == NULL)
        return -ENOMEM;
    size_t n = 0, room = 1;
    for (size_t i = 0; i < l->count; i++) {
        if (!selected(v, &l->procs[i]))
            continue;
        sel[n++] = &l->procs[i];
        room += 1 + (v->threads ? l->procs[i].ntasks : 0);
    }
    sort_view = v;
    qsort(sel, n, sizeof *sel, cmp_rows);
    mproc__row *r = malloc(room * sizeof *r);
    if (r == NULL) {
        free(sel);
        return -ENOMEM;
    }
    int rc = 0;
    if (v->tree) {
        rc = tree_rows(v, l, sel, n, r, nrows);
    } else {
        for (size_t s = 0; s < n; s++)
            add_rows(v, sel[s], 0, r, nrows);
    }
    free(sel);
    if (rc < 0) {
        free(r);
        *nrows = 0;
        return rc;
    }
    *rows = r;
    return 0;
}

mproc__totals mproc__view_totals(const mproc__proc_list *l)
{
    mproc__totals t = { .processes = l->count };
    for (size_t i = 0; i < l->count; i++) {
        const mproc__proc *p = &l->procs[i];
        t.threads += p->threads > 0 ? p->threads : 1;
        switch (p->state) {
        case 'R': t.running++; break;
        case 'S': case 'I': t.sleeping++; break;
        case 'D': t.disk_sleep++; break;
        case 'T': case 't': t.stopped++; break;
        case 'Z': t.zombies++; break;
        default: break;
        }
    }
    return t;
}

/* ------------------------------------------------------------------ */
/* the table and the JSON                                              */
/* ------------------------------------------------------------------ */

void mproc__table_head(mproc__buf *b)
{
    mproc__buf_printf(b, "%7s %7s %-8s %1s %3s %3s %5s %10s %s", "PID", "PPID", "USER", "S",
                      "NI", "THR", "CPU%", "RSS KiB", "NAME");
}

void mproc__table_row(mproc__buf *b, const mproc__row *r, bool cpu_measured)
{
    const mproc__proc *p = r->p;
    const mproc__task *t = r->t;
    double cpu = t != NULL ? t->cpu_percent : p->cpu_percent;
    char cpu_text[16] = "-";
    if (cpu_measured && cpu >= 0)
        snprintf(cpu_text, sizeof cpu_text, "%.1f", cpu);
    if (t != NULL) {
        mproc__buf_printf(b, "%7d %7s %-8s %c %3s %3s %5s %10s ", t->tid, "-", "",
                          t->state, "-", "-", cpu_text, "-");
    } else {
        /* A user name longer than the column ends in '+'. */
        const char *user = mproc__user_name(p->uid);
        char ucol[10];
        if (strlen(user) > 8)
            snprintf(ucol, sizeof ucol, "%.7s+", user);
        else
            snprintf(ucol, sizeof ucol, "%s", user);
        mproc__buf_printf(b, "%7d %7d %-8s %c %3d %3u %5s %10llu ", p->pid, p->ppid, ucol,
                          p->state, p->nice, p->threads, cpu_text,
                          (unsigned long long)p->rss_kib);
    }
    for (int d = 1; d < r->depth; d++)
        mproc__buf_puts(b, "    ");
    if (r->depth > 0)
        mproc__buf_puts(b, " \\_ ");
    if (t != NULL) {
        mproc__buf_puts(b, "{");
        terminal_text(b, t->name);
        mproc__buf_puts(b, "}");
    } else {
        terminal_text(b, p->name);
        if (p->state == 'Z')
            mproc__buf_puts(b, " <defunct>");
    }
}

static void json_cpu(mproc__buf *b, double cpu)
{
    if (cpu >= 0)
        mproc__buf_printf(b, "%.1f", cpu);
    else
        mproc__buf_puts(b, "null");
}

static void json_state(mproc__buf *b, char state)
{
    char s[2] = { state, '\0' };
    mproc__json_string(b, s, 1);
}

static void json_threads(mproc__buf *b, const mproc__proc *p)
{
    mproc__buf_puts(b, ", \"threads_list\": [");
    for (size_t k = 0; k < p->ntasks; k++) {
        const mproc__task *t = &p->tasks[k];
        mproc__buf_printf(b, "%s{\"tid\": %d, \"name\": ", k > 0 ? ", " : "", t->tid);
        mproc__json_string(b, t->name, strlen(t->name));
        mproc__buf_puts(b, ", \"state\": ");
        json_state(b, t->state);
        mproc__buf_puts(b, ", \"cpu_percent\": ");
        json_cpu(b, t->cpu_percent);
        mproc__buf_puts(b, "}");
    }
    mproc__buf_puts(b, "]");
}

void mproc__json_rows(mproc__buf *b, const mproc__view *v, const mproc__row *rows,
                      size_t nrows, bool pretty)
{
    const char *sep = pretty ? "\n  " : "";
    bool first = true;
    mproc__buf_puts(b, "[");
    for (size_t i = 0; i < nrows; i++) {
        const mproc__proc *p = rows[i].p;
        if (rows[i].t != NULL)
            continue; /* threads go in their process's threads_list */
        mproc__buf_printf(b, "%s%s{\"pid\": %d, \"ppid\": %d, \"name\": ", first ? "" : ",",
                          sep, p->pid, p->ppid);
        first = false;
        mproc__json_string(b, p->name, strlen(p->name));
        mproc__buf_puts(b, ", \"state\": ");
        json_state(b, p->state);
        mproc__buf_printf(b, ", \"threads\": %u, \"cpu_percent\": ", p->threads);
        json_cpu(b, v->no_cpu ? -1.0 : p->cpu_percent);
        mproc__buf_printf(b, ", \"rss_kib\": %llu, \"user\": ", (unsigned long long)p->rss_kib);
        const char *user = mproc__user_name(p->uid);
        mproc__json_string(b, user, strlen(user));
        if (p->uid >= 0)
            mproc__buf_printf(b, ", \"uid\": %lld", p->uid);
        else
            mproc__buf_puts(b, ", \"uid\": null");
        mproc__buf_printf(b, ", \"nice\": %d", p->nice);
        if (v->tree)
            mproc__buf_printf(b, ", \"depth\": %d", rows[i].depth);
        if (v->threads)
            json_threads(b, p);
        mproc__buf_puts(b, "}");
    }
    mproc__buf_puts(b, pretty && !first ? "\n]" : "]");
}
