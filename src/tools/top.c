/*
 * tools/top.c -- `mproc top`: the processes of the machine, refreshed, as
 * a full-screen view in a terminal (the notes' mini-htop, seed 001), or
 * as plain snapshots when the output is not a terminal.
 *
 * Interactive mode (stdin and stdout are terminals, no --once/--json):
 * the alternate screen, drawn with ANSI escapes only (no curses), the
 * terminal in non-canonical, no-echo mode (termios). Signals keep their
 * terminal keys (ISIG): SIGINT, SIGTERM, SIGHUP and SIGQUIT restore the
 * terminal and then end the program with that same signal; SIGTSTP
 * (Ctrl-Z) restores it, stops, and takes the screen back on SIGCONT;
 * SIGWINCH redraws at the new size. The handlers only write the signal
 * number to a pipe (the self-pipe trick); the main loop polls that pipe
 * and stdin, and does everything else itself, so nothing but write(2)
 * runs in a handler.
 *
 * Each refresh scans /proc (procfs.c) and measures CPU% against the scan
 * before; the first frame comes after a short look (FIRST_SAMPLE_MS), the
 * others every --interval. A key re-sorts or re-filters the last scan at
 * once, without scanning again.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <mproc.h>

#include "procfs.h"
#include "tools.h"

#define FIRST_SAMPLE_MS 200
#define INTERVAL_MIN 0.1
#define INTERVAL_MAX 3600.0
#define MAX_ITERATIONS 1000000

/* The steps of the + and - keys, in seconds. */
static const double interval_steps[] = { 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 30, 60 };
#define N_STEPS (sizeof interval_steps / sizeof interval_steps[0])

struct top {
    mproc__view v;
    double interval;     /* seconds between scans */
    unsigned iterations; /* frames to show; 0: until q */
    bool once;
    /* the last two scans, and the machine at each */
    mproc__proc_list prev, cur;
    mproc__sysinfo sys_prev, sys;
    bool have_frame;     /* cur holds a scan with CPU% measured */
    /* interactive state */
    int rows, cols;      /* terminal size */
    size_t scroll;       /* first process row shown */
    bool editing;        /* typing a filter after '/' */
    char edit[MPROC__PROC_NAME];
    size_t edit_len;
};

/* ------------------------------------------------------------------ */
/* scanning                                                            */
/* ------------------------------------------------------------------ */

/* Scan again: cur becomes prev, and CPU% is measured between them. */
static int rescan(struct top *t)
{
    mproc__proc_list next = { .procs = NULL };
    int rc = mproc__proc_scan(&next, t->v.threads);
    if (rc < 0) {
        fprintf(stderr, "mproc top: cannot read /proc: %s\n", mproc_strerror(rc));
        return rc;
    }
    mproc__proc_list_free(&t->prev);
    t->prev = t->cur;
    t->cur = next;
    mproc__proc_cpu(&t->cur, &t->prev);
    t->sys_prev = t->sys;
    mproc__sysinfo_read(&t->sys);
    t->have_frame = t->prev.count > 0;
    return 0;
}

/* Busy CPU time of the whole machine between the last two scans, in
 * percent of all its CPUs, or -1. */
static double machine_busy(const struct top *t)
{
    if (t->sys.cpu_all <= t->sys_prev.cpu_all || t->sys_prev.cpu_all == 0)
        return -1.0;
    double all = (double)(t->sys.cpu_all - t->sys_prev.cpu_all);
    double busy = t->sys.cpu_busy >= t->sys_prev.cpu_busy
                      ? (double)(t->sys.cpu_busy - t->sys_prev.cpu_busy) : 0.0;
    return 100.0 * busy / all;
}

/* ------------------------------------------------------------------ */
/* the header                                                          */
/* ------------------------------------------------------------------ */

static long online_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? n : 1;
}

static void header_time(mproc__buf *b, const mproc__sysinfo *s)
{
    time_t now = time(NULL);
    struct tm tm;
    char clock[16] = "?";
    if (localtime_r(&now, &tm) != NULL)
        strftime(clock, sizeof clock, "%H:%M:%S", &tm);
    mproc__buf_printf(b, "mproc top - %s", clock);
    if (s->uptime_s >= 0) {
        long long up = (long long)s->uptime_s;
        long long days = up / 86400;
        mproc__buf_puts(b, ", up ");
        if (days > 0)
            mproc__buf_printf(b, "%lld day%s, ", days, days == 1 ? "" : "s");
        mproc__buf_printf(b, "%02lld:%02lld", up % 86400 / 3600, up % 3600 / 60);
    }
    if (s->load[0] >= 0)
        mproc__buf_printf(b, ", load average: %.2f %.2f %.2f", s->load[0], s->load[1],
                          s->load[2]);
}

/* A size in KiB, as "512 KiB", "12.3 MiB" or "23.5 GiB". */
static void size_kib(mproc__buf *b, uint64_t kib)
{
    if (kib < 1024)
        mproc__buf_printf(b, "%llu KiB", (unsigned long long)kib);
    else if (kib < 1024 * 1024)
        mproc__buf_printf(b, "%.1f MiB", (double)kib / 1024.0);
    else
        mproc__buf_printf(b, "%.1f GiB", (double)kib / (1024.0 * 1024.0));
}

/* "12 zombies", "1 zombie" */
static void count(mproc__buf *b, size_t n, const char *one, const char *many)
{
    mproc__buf_printf(b, "%zu %s", n, n == 1 ? one : many);
}

static void header_filter(mproc__buf *b, const mproc__view *v)
{
    bool any = false;
    mproc__buf_puts(b, "  Filter: ");
    if (v->name[0] != '\0') {
        mproc__buf_puts(b, "name~");
        mproc__json_string(b, v->name, strlen(v->name));
        any = true;
    }
    if (v->npids > 0) {
        mproc__buf_puts(b, any ? " pid=" : "pid=");
        for (size_t i = 0; i < v->npids; i++)
            mproc__buf_printf(b, "%s%d", i > 0 ? "," : "", v->pids[i]);
        any = true;
    }
    if (v->by_user) {
        mproc__buf_printf(b, "%suser=%s", any ? " " : "", mproc__user_name(v->uid));
        any = true;
    }
    if (v->states[0] != '\0') {
        mproc__buf_printf(b, "%sstate=%s", any ? " " : "", v->states);
        any = true;
    }
    if (!any)
        mproc__buf_puts(b, "none");
}

/* The header: four lines, each ending in '\n'. */
static void header(mproc__buf *b, const struct top *t)
{
    const mproc__sysinfo *s = &t->sys;
    mproc__totals n = mproc__view_totals(&t->cur);
    header_time(b, s);
    mproc__buf_puts(b, "\nProcesses: ");
    mproc__buf_printf(b, "%zu total, %zu running, %zu sleeping, %zu disk sleep, %zu stopped, ",
                      n.processes, n.running, n.sleeping, n.disk_sleep, n.stopped);
    count(b, n.zombies, "zombie", "zombies");
    mproc__buf_puts(b, "; ");
    count(b, n.threads, "thread", "threads");
    mproc__buf_puts(b, "\nCPU: ");
    double busy = machine_busy(t);
    if (busy >= 0)
        mproc__buf_printf(b, "%.1f%% busy", busy);
    else
        mproc__buf_puts(b, "-");
    mproc__buf_printf(b, " of %ld CPU%s", online_cpus(), online_cpus() == 1 ? "" : "s");
    if (s->mem_total_kib > 0) {
        uint64_t used = s->mem_total_kib > s->mem_avail_kib
                            ? s->mem_total_kib - s->mem_avail_kib : 0;
        mproc__buf_puts(b, "   Memory: ");
        size_kib(b, s->mem_total_kib);
        mproc__buf_puts(b, " total, ");
        size_kib(b, s->mem_avail_kib);
        mproc__buf_printf(b, " available (%.0f%% used)",
                          100.0 * (double)used / (double)s->mem_total_kib);
    }
    const mproc__view *v = &t->v;
    bool down = v->sort == MPROC__SORT_CPU || v->sort == MPROC__SORT_RSS ||
                v->sort == MPROC__SORT_THREADS;
    mproc__buf_printf(b, "\nSort: %s (%s)  Tree: %s  Threads: %s", mproc__sort_name(v->sort),
                      down != v->reverse ? "largest first" : "smallest first",
                      v->tree ? "on" : "off", v->threads ? "on" : "off");
    header_filter(b, v);
    mproc__buf_printf(b, "  Every: %.1f s\n", t->interval);
}

/* ------------------------------------------------------------------ */
/* plain output: snapshots                                             */
/* ------------------------------------------------------------------ */

static void json_frame(mproc__buf *b, const struct top *t, const mproc__row *rows, size_t n)
{
    const mproc__sysinfo *s = &t->sys;
    mproc__totals k = mproc__view_totals(&t->cur);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    mproc__buf_printf(b, "{\"command\": \"top\", \"time\": %.3f, ",
                      (double)now.tv_sec + (double)now.tv_nsec / 1e9);
    if (s->uptime_s >= 0)
        mproc__buf_printf(b, "\"uptime_s\": %.2f, ", s->uptime_s);
    else
        mproc__buf_puts(b, "\"uptime_s\": null, ");
    if (s->load[0] >= 0)
        mproc__buf_printf(b, "\"load_average\": [%.2f, %.2f, %.2f], ", s->load[0], s->load[1],
                          s->load[2]);
    else
        mproc__buf_puts(b, "\"load_average\": null, ");
    double busy = machine_busy(t);
    mproc__buf_printf(b, "\"cpus\": %ld, \"cpu_busy_percent\": ", online_cpus());
    if (busy >= 0)
        mproc__buf_printf(b, "%.1f, ", busy);
    else
        mproc__buf_puts(b, "null, ");
    mproc__buf_printf(b, "\"mem_total_kib\": %llu, \"mem_available_kib\": %llu, ",
                      (unsigned long long)s->mem_total_kib,
                      (unsigned long long)s->mem_avail_kib);
    mproc__buf_printf(b,
                      "\"totals\": {\"processes\": %zu, \"threads\": %zu, \"running\": %zu, "
                      "\"sleeping\": %zu, \"disk_sleep\": %zu, \"stopped\": %zu, "
                      "\"zombies\": %zu}, \"processes\": ",
                      k.processes, k.threads, k.running, k.sleeping, k.disk_sleep, k.stopped,
                      k.zombies);
    mproc__json_rows(b, &t->v, rows, n, false);
    mproc__buf_puts(b, "}\n");
}

/* One snapshot on stdout: the header and the table, or a JSON line. */
static int print_frame(struct top *t, bool first)
{
    mproc__row *rows = NULL;
    size_t n = 0;
    mproc__buf b = { .data = NULL };
    int rc = mproc__view_rows(&t->v, &t->cur, &rows, &n);
    if (rc == 0 && t->v.json) {
        json_frame(&b, t, rows, n);
    } else if (rc == 0) {
        if (!first)
            mproc__buf_puts(&b, "\n");
        header(&b, t);
        mproc__buf_puts(&b, "\n");
        mproc__table_head(&b);
        mproc__buf_puts(&b, "\n");
        for (size_t i = 0; i < n; i++) {
            mproc__table_row(&b, &rows[i], true);
            mproc__buf_puts(&b, "\n");
        }
    }
    if (rc == 0 && b.failed)
        rc = -ENOMEM;
    if (rc == 0) {
        fwrite(b.data, 1, b.len, stdout);
        fflush(stdout);
    } else {
        fprintf(stderr, "mproc top: %s\n", mproc_strerror(rc));
    }
    mproc__buf_free(&b);
    free(rows);
    return rc;
}

/* Sleep until `deadline_ns` on the monotonic clock. */
static void sleep_until(int64_t deadline_ns)
{
    int64_t left = deadline_ns - mproc_now_ns();
    if (left > 0)
        mproc_sleep_ms((left + 999999) / 1000000);
}

static int run_plain(struct top *t)
{
    unsigned frames = t->iterations == 0 ? 1 : t->iterations;
    int64_t every_ns = (int64_t)(t->interval * 1e9);
    int64_t first_ns = every_ns < FIRST_SAMPLE_MS * INT64_C(1000000)
                           ? every_ns : FIRST_SAMPLE_MS * INT64_C(1000000);
    int rc = rescan(t);
    for (unsigned f = 0; f < frames && rc == 0; f++) {
        sleep_until(t->cur.when_ns + (f == 0 ? first_ns : every_ns));
        rc = rescan(t);
        if (rc == 0)
            rc = print_frame(t, f == 0);
        if (ferror(stdout))
            rc = -EIO;
    }
    return rc == 0 ? MPROC_TOOL_OK : MPROC_TOOL_FAILED;
}

/* ------------------------------------------------------------------ */
/* the terminal                                                        */
/* ------------------------------------------------------------------ */

/* The write end gets the number of each signal caught; the main loop
 * reads the other. Set up before the handlers, closed after them. */
static int signal_pipe[2] = { -1, -1 };

static const int caught_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT,
                                      SIGWINCH };
#define N_CAUGHT (sizeof caught_signals / sizeof caught_signals[0])
static struct sigaction old_actions[N_CAUGHT];

static struct termios saved_termios;
static bool raw_mode;

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char c = (unsigned char)sig;
    ssize_t n = write(signal_pipe[1], &c, 1); /* a full pipe: one is enough */
    (void)n;
    errno = saved;
}

static int install_signals(void)
{
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < N_CAUGHT; i++) {
        /* A signal ignored from the start (nohup) stays ignored. */
        if (sigaction(caught_signals[i], NULL, &old_actions[i]) == 0 &&
            old_actions[i].sa_handler == SIG_IGN)
            continue;
        sigaction(caught_signals[i], &sa, NULL);
    }
    return 0;
}

static void remove_signals(void)
{
    for (size_t i = 0; i < N_CAUGHT; i++)
        sigaction(caught_signals[i], &old_actions[i], NULL);
    for (int i = 0; i < 2; i++)
        if (signal_pipe[i] >= 0) {
            close(signal_pipe[i]);
            signal_pipe[i] = -1;
        }
}

static int out(const char *s)
{
    return mproc__write_all(STDOUT_FILENO, s, strlen(s));
}

/* Non-canonical, no echo, no flow control; the alternate screen, the
 * cursor hidden. */
static int enter_screen(void)
{
    struct termios raw = saved_termios;
    raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    raw.c_iflag &= ~(tcflag_t)(IXON | ICRNL);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) < 0)
        return -errno;
    raw_mode = true;
    return out("\033[?1049h\033[?25l\033[H\033[2J");
}

/* Undo enter_screen (harmless when already undone). */
static void leave_screen(void)
{
    if (!raw_mode)
        return;
    out("\033[0m\033[?25h\033[?1049l");
    tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_termios);
    raw_mode = false;
}

static void read_size(struct top *t)
{
    struct winsize ws;
    t->rows = 24;
    t->cols = 80;
    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
        t->rows = ws.ws_row;
        t->cols = ws.ws_col;
    }
}

/* ------------------------------------------------------------------ */
/* drawing                                                             */
/* ------------------------------------------------------------------ */

/* Append at most `cols` columns of text[0..len) to b (a column per
 * UTF-8 character: wide characters may overflow a little, never wrap a
 * line of ours onto the next, since \033[K ends each). Returns the
 * columns used. */
static int put_cols(mproc__buf *b, const char *text, size_t len, int cols)
{
    int used = 0;
    size_t i = 0;
    while (i < len && used < cols) {
        size_t n = 1;
        while (i + n < len && ((unsigned char)text[i + n] & 0xC0) == 0x80)
            n++;
        mproc__buf_put(b, text + i, n);
        i += n;
        used++;
    }
    return used;
}

/* A line of the screen: text clipped to the width, then the rest of
 * the line erased; `attr` (an SGR sequence, or NULL) colours it, `fill`
 * pads it to the width first (for bars in reverse video). */
static void screen_line(mproc__buf *b, const struct top *t, const char *text, size_t len,
                        const char *attr, bool fill, bool last)
{
    int width = last ? t->cols - 1 : t->cols; /* no wrap from the corner */
    if (attr != NULL)
        mproc__buf_puts(b, attr);
    int used = put_cols(b, text, len, width);
    if (fill)
        for (; used < width; used++)
            mproc__buf_put(b, " ", 1);
    mproc__buf_puts(b, attr != NULL ? "\033[0m\033[K" : "\033[K");
    if (!last)
        mproc__buf_puts(b, "\r\n");
}

static const char key_help[] =
    "q quit  c/m/p/n/t sort by cpu/mem/pid/name/threads  s next sort  r reverse  "
    "T tree  H threads  z zombies  / filter  +/- interval  arrows scroll";

static int draw(struct top *t)
{
    mproc__row *rows = NULL;
    size_t nrows = 0;
    int rc = mproc__view_rows(&t->v, &t->cur, &rows, &nrows);
    if (rc < 0)
        return rc;
    mproc__buf b = { .data = NULL }, line = { .data = NULL };
    mproc__buf_puts(&b, "\033[H");

    /* The header, line by line. */
    header(&line, t);
    int y = 0;
    for (const char *l = line.data; l != NULL && *l != '\0' && y < t->rows - 1; y++) {
        const char *nl = strchr(l, '\n');
        size_t len = nl != NULL ? (size_t)(nl - l) : strlen(l);
        screen_line(&b, t, l, len, NULL, false, false);
        l = nl != NULL ? nl + 1 : l + len;
    }
    if (y < t->rows - 2) {
        line.len = 0;
        mproc__table_head(&line);
        screen_line(&b, t, line.data, line.len, "\033[7m", true, false);
        y++;
    }

    /* The rows that fit, from t->scroll; the last line is for keys. */
    size_t room = t->rows - 1 > y ? (size_t)(t->rows - 1 - y) : 0;
    if (t->scroll + room > nrows)
        t->scroll = nrows > room ? nrows - room : 0;
    for (size_t i = t->scroll; i < nrows && i < t->scroll + room; i++, y++) {
        line.len = 0;
        mproc__table_row(&line, &rows[i], t->have_frame);
        bool zombie = rows[i].t == NULL && rows[i].p->state == 'Z';
        bool thread = rows[i].t != NULL;
        screen_line(&b, t, line.data, line.len,
                    zombie ? "\033[1;31m" : thread ? "\033[2m" : NULL, false, false);
    }
    if (nrows == 0 && y < t->rows - 1) {
        screen_line(&b, t, "(no process matches)", 20, NULL, false, false);
        y++;
    }
    mproc__buf_puts(&b, "\033[J");

    /* The last line: the filter being typed, or the keys. */
    mproc__buf_printf(&b, "\033[%d;1H", t->rows);
    line.len = 0;
    if (t->editing) {
        mproc__buf_puts(&line, "Filter by name (Enter applies, Esc cancels): ");
        mproc__buf_put(&line, t->edit, t->edit_len);
        mproc__buf_puts(&line, "_");
    } else {
        mproc__buf_puts(&line, key_help);
    }
    screen_line(&b, t, line.data, line.len, "\033[7m", true, true);

    if (b.failed || line.failed)
        rc = -ENOMEM;
    else
        rc = mproc__write_all(STDOUT_FILENO, b.data, b.len);
    mproc__buf_free(&b);
    mproc__buf_free(&line);
    free(rows);
    return rc;
}

/* ------------------------------------------------------------------ */
/* keys                                                                */
/* ------------------------------------------------------------------ */

enum action { KEEP, REDRAW, RESCAN, QUIT };

static void sort_by(struct top *t, mproc__sort_key k)
{
    t->v.sort = k;
    t->v.reverse = false;
    t->scroll = 0;
}

static void step_interval(struct top *t, int dir)
{
    if (dir > 0) {
        for (size_t i = 0; i < N_STEPS; i++)
            if (interval_steps[i] > t->interval + 1e-9) {
                t->interval = interval_steps[i];
                return;
            }
    } else {
        for (size_t i = N_STEPS; i-- > 0;)
            if (interval_steps[i] < t->interval - 1e-9) {
                t->interval = interval_steps[i];
                return;
            }
    }
}

/* An escape sequence at s[0..n) (s[0] is ESC): its length, and *key
 * set to 'U' up, 'D' down, 'P' page up, 'N' page down, 'H' home, 'E'
 * end, or 0 (something else, or ESC alone: *len 1). */
static size_t escape_key(const unsigned char *s, size_t n, char *key)
{
    *key = 0;
    if (n < 2 || (s[1] != '[' && s[1] != 'O'))
        return 1;
    size_t i = 2;
    while (i < n && (s[i] < 0x40 || s[i] > 0x7E))
        i++;
    if (i == n)
        return n;
    char fin = (char)s[i];
    if (fin == 'A' || fin == 'B' || fin == 'H' || fin == 'F')
        *key = fin == 'A' ? 'U' : fin == 'B' ? 'D' : fin == 'H' ? 'H' : 'E';
    else if (fin == '~' && i == 3)
        *key = s[2] == '5' ? 'P' : s[2] == '6' ? 'N' : s[2] == '1' || s[2] == '7' ? 'H'
             : s[2] == '4' || s[2] == '8' ? 'E' : 0;
    return i + 1;
}

static size_t page(const struct top *t)
{
    return t->rows > 8 ? (size_t)(t->rows - 8) : 1;
}

static enum action scroll_key(struct top *t, char key)
{
    switch (key) {
    case 'U': t->scroll = t->scroll > 0 ? t->scroll - 1 : 0; break;
    case 'D': t->scroll++; break;
    case 'P': t->scroll = t->scroll > page(t) ? t->scroll - page(t) : 0; break;
    case 'N': t->scroll += page(t); break;
    case 'H': t->scroll = 0; break;
    case 'E': t->scroll = SIZE_MAX / 2; break; /* draw() clamps it */
    default: return KEEP;
    }
    return REDRAW;
}

/* A byte typed while editing the filter. */
static enum action edit_key(struct top *t, unsigned char c)
{
    if (c == '\r' || c == '\n') {
        memcpy(t->v.name, t->edit, t->edit_len);
        t->v.name[t->edit_len] = '\0';
        t->editing = false;
        t->scroll = 0;
    } else if (c == 0x7F || c == 0x08) {
        while (t->edit_len > 0 && ((unsigned char)t->edit[--t->edit_len] & 0xC0) == 0x80)
            ;
    } else if (c == 0x15) { /* Ctrl-U */
        t->edit_len = 0;
    } else if (c >= 0x20 && t->edit_len < sizeof t->edit - 1) {
        t->edit[t->edit_len++] = (char)c;
    } else {
        return KEEP;
    }
    return REDRAW;
}

static enum action command_key(struct top *t, unsigned char c)
{
    switch (c) {
    case 'q': case 'Q': return QUIT;
    case 'c': sort_by(t, MPROC__SORT_CPU); break;
    case 'm': sort_by(t, MPROC__SORT_RSS); break;
    case 'p': sort_by(t, MPROC__SORT_PID); break;
    case 'n': sort_by(t, MPROC__SORT_NAME); break;
    case 't': sort_by(t, MPROC__SORT_THREADS); break;
    case 's': sort_by(t, (mproc__sort_key)((t->v.sort + 1) % (MPROC__SORT_USER + 1))); break;
    case 'r': t->v.reverse = !t->v.reverse; break;
    case 'T': t->v.tree = !t->v.tree; break;
    case 'H':
        t->v.threads = !t->v.threads;
        return t->v.threads ? RESCAN : REDRAW;
    case 'z':
        if (strcmp(t->v.states, "Z") == 0)
            t->v.states[0] = '\0';
        else
            memcpy(t->v.states, "Z", 2);
        t->scroll = 0;
        break;
    case '/':
        t->editing = true;
        t->edit_len = strlen(t->v.name);
        memcpy(t->edit, t->v.name, t->edit_len);
        break;
    case '+': case '=': step_interval(t, +1); break;
    case '-': case '_': step_interval(t, -1); break;
    case ' ': return RESCAN;
    case 'k': return scroll_key(t, 'U');
    case 'j': return scroll_key(t, 'D');
    case 0x0C: /* Ctrl-L: repaint everything */
        out("\033[2J");
        break;
    default: return KEEP;
    }
    return REDRAW;
}

/* Handle the bytes read from the terminal; the strongest action wins. */
static enum action keys(struct top *t, const unsigned char *s, size_t n)
{
    enum action a = KEEP;
    for (size_t i = 0; i < n && a != QUIT;) {
        enum action k;
        if (s[i] == 0x1B) {
            char key;
            size_t len = escape_key(s + i, n - i, &key);
            if (t->editing && len == 1) {
                t->editing = false; /* Esc alone: cancel the edit */
                k = REDRAW;
            } else {
                k = t->editing ? KEEP : scroll_key(t, key);
            }
            i += len;
        } else {
            k = t->editing ? edit_key(t, s[i]) : command_key(t, s[i]);
            i++;
        }
        if (k > a)
            a = k;
    }
    return a;
}

/* ------------------------------------------------------------------ */
/* the interactive loop                                                */
/* ------------------------------------------------------------------ */

/* Stop on Ctrl-Z with the terminal as it was; take it back after. */
static int suspend(void)
{
    leave_screen();
    struct sigaction dfl, mine;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGTSTP, &dfl, &mine);
    raise(SIGTSTP); /* stops here until SIGCONT */
    sigaction(SIGTSTP, &mine, NULL);
    return enter_screen();
}

/* Drain the signal pipe. Returns the signal that ends the program, 0,
 * or -errno; sets *redraw when the screen must be drawn again. */
static int signals(struct top *t, bool *redraw)
{
    unsigned char sigs[32];
    ssize_t n;
    int end = 0;
    while ((n = read(signal_pipe[0], sigs, sizeof sigs)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            int sig = sigs[i];
            if (sig == SIGTSTP) {
                int rc = suspend();
                if (rc < 0)
                    return rc;
                *redraw = true;
            } else if (sig == SIGCONT) {
                /* Stopped by someone else (SIGSTOP): the shell may have
                 * reset the terminal; take it again. */
                int rc = enter_screen();
                if (rc < 0)
                    return rc;
                *redraw = true;
            } else if (sig == SIGWINCH) {
                read_size(t);
                *redraw = true;
            } else if (end == 0) {
                end = sig;
            }
        }
    }
    return end;
}

/* Wait for a key, a signal or the deadline; act on them. Returns QUIT
 * (with *sig or *rc set when a signal or a failure ended it), or the
 * action to take. */
static enum action wait_event(struct top *t, int64_t deadline_ns, int *sig, int *rc)
{
    int64_t left = deadline_ns - mproc_now_ns();
    int ms = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
    struct pollfd fds[2] = { { .fd = STDIN_FILENO, .events = POLLIN },
                             { .fd = signal_pipe[0], .events = POLLIN } };
    int n = poll(fds, 2, ms);
    if (n < 0)
        return errno == EINTR ? KEEP : (*rc = -errno, QUIT);
    enum action a = KEEP;
    if (fds[1].revents & POLLIN) {
        bool redraw = false;
        int s = signals(t, &redraw);
        if (s != 0) {
            if (s < 0)
                *rc = s;
            else
                *sig = s;
            return QUIT;
        }
        if (redraw)
            a = REDRAW;
    }
    if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
        unsigned char buf[64];
        ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN))
            return QUIT; /* the terminal went away */
        if (got > 0) {
            enum action k = keys(t, buf, (size_t)got);
            if (k > a)
                a = k;
        }
    }
    return a;
}

static int run_screen(struct top *t)
{
    int sig = 0, rc = install_signals();
    if (rc == 0 && tcgetattr(STDIN_FILENO, &saved_termios) < 0)
        rc = -errno;
    if (rc == 0)
        rc = enter_screen();
    read_size(t);
    if (rc == 0)
        rc = rescan(t);
    int64_t first_ns = (int64_t)(t->interval * 1e9) < FIRST_SAMPLE_MS * INT64_C(1000000)
                           ? (int64_t)(t->interval * 1e9) : FIRST_SAMPLE_MS * INT64_C(1000000);
    int64_t deadline = mproc_now_ns() + first_ns;
    unsigned frames = 0;
    if (rc == 0)
        rc = draw(t);
    while (rc == 0) {
        enum action a = wait_event(t, deadline, &sig, &rc);
        if (a == QUIT)
            break;
        if (a == RESCAN || mproc_now_ns() >= deadline) {
            rc = rescan(t);
            if (rc < 0)
                break;
            deadline = t->cur.when_ns + (int64_t)(t->interval * 1e9);
            frames++;
            a = REDRAW;
        }
        if (a == REDRAW)
            rc = draw(t);
        if (t->iterations > 0 && frames >= t->iterations)
            break;
    }
    leave_screen();
    remove_signals();
    if (sig != 0) {
        /* End as the signal would have ended us, now that the terminal
         * is restored: the shell sees "killed by SIGINT". */
        mproc__proc_list_free(&t->prev);
        mproc__proc_list_free(&t->cur);
        fflush(stdout);
        signal(sig, SIG_DFL);
        raise(sig);
    }
    if (rc < 0 && rc != -EIO)
        fprintf(stderr, "mproc top: %s\n", mproc_strerror(rc));
    return rc == 0 ? MPROC_TOOL_OK : MPROC_TOOL_FAILED;
}

/* ------------------------------------------------------------------ */
/* command line                                                        */
/* ------------------------------------------------------------------ */

void mproc__top_usage(FILE *out_file)
{
    fputs("usage: mproc top [options]\n"
          "\n"
          "The processes of this machine, refreshed: a full-screen view in a\n"
          "terminal, like htop (the notes' mini-htop, read from /proc). A header\n"
          "gives the time, uptime, load average, the count of processes by state\n"
          "(zombies included) and of threads, how busy the CPUs are and the memory;\n"
          "below, a row per process: pid, parent pid, user, state, nice, threads,\n"
          "CPU% since the last refresh (100 = one CPU), resident memory and name.\n"
          "Zombies (state Z, exited but not waited for) are shown in red.\n"
          "When stdin or stdout is not a terminal, or with --once or --json, it\n"
          "prints snapshots instead: the header and the table (or one JSON object\n"
          "per line), --iterations of them (1 by default), --interval apart.\n"
          "\n"
          "options:\n"
          "  -d, --interval SECONDS  time between refreshes, 0.1 to 3600, decimals\n"
          "                          allowed (default 1); the first frame comes\n"
          "                          after 0.2 s (or the interval, if shorter)\n"
          "  --once                  print one snapshot and exit (as `mproc ps`, with\n"
          "                          the header)\n"
          "  -n, --iterations N      stop after N refreshes (snapshots, or frames on\n"
          "                          the screen)\n",
          out_file);
    mproc__view_usage(out_file, "cpu", false);
    fputs("\n"
          "keys, on the screen:\n"
          "  q            quit (Ctrl-C too); the terminal is restored\n"
          "  c m p n t    sort by CPU%, memory (RSS), pid, name, thread count\n"
          "  s            the next sort key (pid, cpu, rss, threads, name, state, user)\n"
          "  r            reverse the order\n"
          "  T            tree view on/off (children under their parents)\n"
          "  H            threads on/off (each process's threads under it)\n"
          "  z            only zombies on/off\n"
          "  /            filter by name: type part of it, Enter (empty: no filter),\n"
          "               Esc cancels\n"
          "  + -          longer / shorter interval (0.1 s ... 60 s)\n"
          "  space        refresh now\n"
          "  up down j k, PgUp PgDn, Home End   scroll\n"
          "\n"
          "JSON (--json): one object per snapshot, on one line: command, time (Unix\n"
          "seconds), uptime_s, load_average [1, 5, 15 min], cpus, cpu_busy_percent,\n"
          "mem_total_kib, mem_available_kib, totals {processes, threads, running,\n"
          "sleeping, disk_sleep, stopped, zombies} (of all processes, whatever the\n"
          "filters), and processes: an array as `mproc ps --json` prints it.\n"
          "\n"
          "Exit status: 0 done, 1 /proc or the terminal failed, 2 bad usage.\n",
          out_file);
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "mproc top: %s '%s' (see 'mproc help top')\n", what, arg);
    return MPROC_TOOL_USAGE;
}

/* "1", "0.25", "2.": seconds between INTERVAL_MIN and INTERVAL_MAX. */
static int parse_interval(const char *text, double *out_s)
{
    const char *c = text;
    double v = 0, scale = 1;
    bool digits = false, dot = false;
    for (; *c != '\0'; c++) {
        if (*c == '.' && !dot) {
            dot = true;
        } else if (*c >= '0' && *c <= '9') {
            digits = true;
            if (dot)
                v += (*c - '0') * (scale /= 10);
            else
                v = v * 10 + (*c - '0');
            if (v > INTERVAL_MAX * 10)
                break;
        } else {
            break;
        }
    }
    if (*c != '\0' || !digits || v < INTERVAL_MIN - 1e-9 || v > INTERVAL_MAX)
        return usage_error("--interval takes seconds from 0.1 to 3600, like 1 or 0.5, not",
                           text);
    *out_s = v;
    return 0;
}

/* The value of an option given as "--opt=V", "--opt V" or "-o V". */
static const char *value_of(int argc, char **argv, int *i, size_t name_len)
{
    const char *a = argv[*i];
    if (a[1] == '-' && a[name_len] == '=')
        return a + name_len + 1;
    return *i + 1 < argc ? argv[++*i] : NULL;
}

static bool is_option(const char *a, const char *name, const char *short_name)
{
    size_t n = strlen(name);
    return strcmp(a, short_name) == 0 || strcmp(a, name) == 0 ||
           (strncmp(a, name, n) == 0 && a[n] == '=');
}

/* Parse argv[1..argc) into *t. Returns 0, 1 for --help, or
 * MPROC_TOOL_USAGE (message printed). */
static int parse_opts(int argc, char **argv, struct top *t)
{
    bool help = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--no-cpu") == 0) /* top is all about CPU% */
            return usage_error("unknown option", a);
        int rc = mproc__view_option("top", argc, argv, &i, &t->v);
        if (rc == 1)
            continue;
        if (rc != 0)
            return rc;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = true;
        } else if (strcmp(a, "--once") == 0) {
            t->once = true;
        } else if (is_option(a, "--interval", "-d")) {
            const char *v = value_of(argc, argv, &i, strlen("--interval"));
            if (v == NULL)
                return usage_error("a value must follow", a);
            if (parse_interval(v, &t->interval) != 0)
                return MPROC_TOOL_USAGE;
        } else if (is_option(a, "--iterations", "-n")) {
            const char *v = value_of(argc, argv, &i, strlen("--iterations"));
            if (v == NULL)
                return usage_error("a value must follow", a);
            if (mproc__parse_count(v, MAX_ITERATIONS, &t->iterations) < 0)
                return usage_error("--iterations takes a whole number from 1 to 1000000, not",
                                   v);
        } else {
            return usage_error(a[0] == '-' ? "unknown option" : "unexpected argument", a);
        }
    }
    if (!help && t->once && t->iterations > 1)
        return usage_error("--once shows one snapshot; it cannot go with", "--iterations");
    return help ? 1 : 0;
}

int mproc__top_main(int argc, char **argv)
{
    struct top t = { .v = { .sort = MPROC__SORT_CPU }, .interval = 1.0 };
    int rc = parse_opts(argc, argv, &t);
    if (rc == 1) {
        mproc__top_usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (rc != 0)
        return rc;
    bool screen = !t.once && !t.v.json && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
    if (t.once)
        t.iterations = 1;
    rc = screen ? run_screen(&t) : run_plain(&t);
    mproc__proc_list_free(&t.prev);
    mproc__proc_list_free(&t.cur);
    return rc;
}
