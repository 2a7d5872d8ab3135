/*
 * tests/runner.c -- runs each registered test in a forked child, in its
 * own process group, with a deadline. See runner.h.
 */
#include "runner.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mproc/os.h"

#define MAX_TESTS 512

static struct {
    const char *name;
    test_fn fn;
    int seconds;
} tests[MAX_TESTS];
static int ntests;
static const char *current_name = "?";

void test_register(const char *name, test_fn fn, int seconds)
{
    if (ntests == MAX_TESTS) {
        fprintf(stderr, "runner: too many tests (raise MAX_TESTS)\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    tests[ntests].seconds = seconds;
    ntests++;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "FAIL %s at %s:%d: ", current_name, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

const char *test_errname(int code)
{
    return mproc_errname(code);
}

int64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long test_scaled(long n)
{
    const char *s = getenv("MPROC_TEST_SCALE");
    long div = s ? strtol(s, NULL, 10) : 1;
    if (div < 1)
        div = 1;
    n /= div;
    return n > 0 ? n : 1;
}

pid_t test_fork(int (*fn)(void *arg), void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        test_fail(__FILE__, __LINE__, "fork: %s", strerror(errno));
    if (pid == 0)
        _exit(fn(arg) & 0xff);
    return pid;
}

int test_wait(pid_t pid, int64_t timeout_ms)
{
    int64_t end = test_now_ms() + timeout_ms;
    for (int delay_us = 100;; delay_us = delay_us < 10000 ? delay_us * 2 : delay_us) {
        int status;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return status;
        if (r < 0 && errno != EINTR)
            test_fail(__FILE__, __LINE__, "waitpid(%d): %s", (int)pid, strerror(errno));
        if (test_now_ms() >= end)
            return -1;
        usleep((useconds_t)delay_us);
    }
}

void test_wait_sleeping(pid_t tid, int64_t timeout_ms)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)tid);
    int64_t end = test_now_ms() + timeout_ms;
    for (int seen = 0;;) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            test_fail(__FILE__, __LINE__, "cannot open %s: %s", path, strerror(errno));
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            test_fail(__FILE__, __LINE__, "cannot read %s", path);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        if (!p || p[1] != ' ')
            test_fail(__FILE__, __LINE__, "unexpected %s", path);
        seen = p[2] == 'S' ? seen + 1 : 0;
        if (seen == 2)
            return;
        if (test_now_ms() >= end)
            test_fail(__FILE__, __LINE__, "task %d never went to sleep", (int)tid);
        usleep(2000);
    }
}

/* Wait for the test child with a deadline: poll a pidfd when the kernel has
 * one, else poll waitpid. Returns the status, or -1 on timeout. */
static int wait_deadline(pid_t pid, int seconds)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int64_t end = test_now_ms() + (int64_t)seconds * 1000;
        int r;
        do {
            int64_t left = end - test_now_ms();
            r = left > 0 ? poll(&p, 1, (int)left) : 0;
        } while (r < 0 && errno == EINTR);
        close(fd);
        if (r == 0)
            return -1;
        int status;
        while (waitpid(pid, &status, 0) < 0)
            if (errno != EINTR)
                return -1;
        return status;
    }
#endif
    return test_wait(pid, (int64_t)seconds * 1000);
}

/* The test child ends with _exit, which skips LeakSanitizer's exit-time
 * check: run it by hand in ASan builds (it fails the test on a leak). */
#if defined(__SANITIZE_ADDRESS__)
#define MPROC_TEST_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MPROC_TEST_LSAN 1
#endif
#endif
#ifdef MPROC_TEST_LSAN
void __lsan_do_leak_check(void);
static void check_leaks(void)
{
    __lsan_do_leak_check();
}
#else
static void check_leaks(void)
{
}
#endif

static int run_one(int i)
{
    current_name = tests[i].name;
    if (getenv("MPROC_TEST_NOFORK")) {
        tests[i].fn();
        printf("ok   %s\n", tests[i].name);
        return 0;
    }
    fflush(NULL);
    int64_t t0 = test_now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("runner: fork");
        return 1;
    }
    if (pid == 0) {
        setpgid(0, 0);
        tests[i].fn();
        fflush(NULL);
        check_leaks();
        _exit(0);
    }
    setpgid(pid, pid); /* also here, so the group exists before we kill it */
    int status = wait_deadline(pid, tests[i].seconds);
    int64_t ms = test_now_ms() - t0;
    /* Kill whatever the test left behind: helpers share its group. */
    kill(-pid, SIGKILL);
    if (status == -1) {
        waitpid(pid, &status, 0);
        printf("FAIL %s: no result within its %d s deadline (killed)\n",
               tests[i].name, tests[i].seconds);
        return 1;
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s (%lld ms)\n", tests[i].name, (long long)ms);
        return 0;
    }
    if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d (%s)\n", tests[i].name,
               WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        printf("FAIL %s: exit status %d\n", tests[i].name, WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < ntests; i++)
            printf("%s %d\n", tests[i].name, tests[i].seconds);
        return 0;
    }
    int failed = 0, ran = 0;
    if (argc == 1) {
        for (int i = 0; i < ntests; i++, ran++)
            failed += run_one(i);
    } else {
        for (int a = 1; a < argc; a++) {
            int found = 0;
            for (int i = 0; i < ntests; i++)
                if (strcmp(tests[i].name, argv[a]) == 0) {
                    failed += run_one(i);
                    ran++;
                    found = 1;
                }
            if (!found) {
                printf("FAIL %s: no such test\n", argv[a]);
                failed++;
            }
        }
    }
    printf("%d/%d passed\n", ran - failed, ran);
    return failed ? 1 : 0;
}
