/*
 * tests/cmdrun.h -- run a command as a user would (fork + exec), with
 * input on stdin, and keep its exit status and what it printed; for the
 * suites that test the `mproc` command.
 */
#ifndef MPROC_TEST_CMDRUN_H
#define MPROC_TEST_CMDRUN_H

/* How a command ended and what it printed. */
struct result {
    int status; /* exit status */
    char *out;  /* stdout, NUL-terminated */
    char *err;  /* stderr, NUL-terminated */
};

/* Run file with argv (argv[0] included, NULL-terminated) and `input` on
 * stdin; wait at most 60 s. Fails the test if it hangs or is killed. */
struct result run_with(const char *file, char *const *argv, const char *input);

/* Free what run_with returned. */
void result_free(struct result *r);

/* The exit status must be `want`; shows both streams otherwise. */
void expect_status(const struct result *r, int want);

/* `what` must occur in `text` (`where` names it in the failure). */
void expect_has(const char *text, const char *what, const char *where);

#endif /* MPROC_TEST_CMDRUN_H */
