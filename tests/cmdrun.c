/*
 * tests/cmdrun.c -- see cmdrun.h.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdrun.h"
#include "runner.h"

struct exec_args {
    const char *file;  /* path, or a name looked up in PATH */
    char *const *argv;
    int in, out, err;
};

/* In the forked child: plumb the files in and exec. 127: not found. */
static int exec_child(void *arg)
{
    const struct exec_args *a = arg;
    if (dup2(a->in, STDIN_FILENO) < 0 || dup2(a->out, STDOUT_FILENO) < 0 ||
        dup2(a->err, STDERR_FILENO) < 0)
        return 126;
    execvp(a->file, a->argv);
    return 127;
}

/* An unlinked temporary file holding `text`, positioned at its start. */
static FILE *temp_with(const char *text)
{
    FILE *f = tmpfile();
    CHECK_MSG(f != NULL, "tmpfile failed");
    CHECK(fputs(text, f) >= 0 && fflush(f) == 0);
    CHECK(lseek(fileno(f), 0, SEEK_SET) == 0);
    return f;
}

/* The whole content of f, NUL-terminated (malloc'd). */
static char *slurp(FILE *f)
{
    CHECK(lseek(fileno(f), 0, SEEK_END) >= 0);
    long size = (long)lseek(fileno(f), 0, SEEK_CUR);
    CHECK(size >= 0 && lseek(fileno(f), 0, SEEK_SET) == 0);
    char *buf = malloc((size_t)size + 1);
    CHECK(buf != NULL);
    size_t got = 0;
    while (got < (size_t)size) {
        ssize_t n = read(fileno(f), buf + got, (size_t)size - got);
        CHECK(n > 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
    return buf;
}

/* Run file with argv (argv[0] included, NULL-terminated) and `input` on
 * stdin; wait at most 60 s. Fails the test if it hangs or is killed. */
struct result run_with(const char *file, char *const *argv, const char *input)
{
    FILE *in = temp_with(input), *out = temp_with(""), *err = temp_with("");
    struct exec_args a = { file, argv, fileno(in), fileno(out), fileno(err) };
    pid_t pid = test_fork(exec_child, &a);
    int status = test_wait(pid, 60000);
    if (status == -1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        CHECK_MSG(0, "%s %s did not finish within 60 s", file, argv[1] ? argv[1] : "");
    }
    struct result r = { .status = -1, .out = slurp(out), .err = slurp(err) };
    fclose(in);
    fclose(out);
    fclose(err);
    CHECK_MSG(WIFEXITED(status), "%s was killed by signal %d; stderr:\n%s", file,
              WTERMSIG(status), r.err);
    r.status = WEXITSTATUS(status);
    return r;
}

void result_free(struct result *r)
{
    free(r->out);
    free(r->err);
}

/* The exit status must be `want`; shows both streams otherwise. */
void expect_status(const struct result *r, int want)
{
    CHECK_MSG(r->status == want, "exit status %d, want %d\nstdout:\n%s\nstderr:\n%s",
              r->status, want, r->out, r->err);
}

void expect_has(const char *text, const char *what, const char *where)
{
    CHECK_MSG(strstr(text, what) != NULL, "no \"%s\" in %s:\n%s", what, where, text);
}