/*
 * tools/main.c -- the `mproc` command: finds the subcommand and runs it.
 *
 *   mproc <command> [options]     run a command
 *   mproc help [command]          help on mproc, or on one command
 *   mproc --help | -h             help on mproc
 *   mproc --version               the library version
 *
 * Exit status: what the command returns (0 done, 1 failed), 2 for an
 * unknown command or option. Messages about failures go to stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#include "tools.h"

static const mproc__command commands[] = {
    { "bench", "CPU-bound vs I/O-bound work on threads: speed-ups, Amdahl's law",
      mproc__bench_main, mproc__bench_usage },
    { "lab", "the claims of the notes, each measured here with a verdict",
      mproc__lab_main, mproc__lab_usage },
    { "ps", "processes and threads, once (table or JSON)", mproc__ps_main, mproc__ps_usage },
    { "top", "processes and threads, live (a mini-htop)", mproc__top_main, mproc__top_usage },
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const mproc__command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *out)
{
    fputs("usage: mproc <command> [options]\n"
          "       mproc help [command]\n"
          "\n"
          "The lessons of the notes on threads and processes, measured on this\n"
          "machine with the mproc library.\n"
          "\n"
          "commands:\n",
          out);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "options:\n"
          "  -h, --help   print this help\n"
          "  --version    print the version of mproc\n"
          "\n"
          "`mproc help <command>` or `mproc <command> --help` describes a command.\n",
          out);
}

static int unknown_command(const char *name)
{
    fprintf(stderr, "mproc: unknown command '%s' (see 'mproc --help')\n", name);
    return MPROC_TOOL_USAGE;
}

/* `mproc help [command]`; argv[0] is "help". */
static int help(int argc, char **argv)
{
    if (argc < 2) {
        usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (argc > 2) {
        fprintf(stderr, "mproc help: one command at a time (see 'mproc --help')\n");
        return MPROC_TOOL_USAGE;
    }
    const mproc__command *c = find_command(argv[1]);
    if (c == NULL)
        return unknown_command(argv[1]);
    c->usage(stdout);
    return MPROC_TOOL_OK;
}

static int dispatch(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MPROC_TOOL_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return MPROC_TOOL_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("mproc %d.%d.%d\n", MPROC_VERSION_MAJOR, MPROC_VERSION_MINOR,
               MPROC_VERSION_PATCH);
        return MPROC_TOOL_OK;
    }
    if (strcmp(name, "help") == 0)
        return help(argc - 1, argv + 1);
    if (name[0] == '-') {
        fprintf(stderr, "mproc: unknown option '%s' (see 'mproc --help')\n", name);
        return MPROC_TOOL_USAGE;
    }
    const mproc__command *c = find_command(name);
    if (c == NULL)
        return unknown_command(name);
    return c->main(argc - 1, argv + 1);
}

int main(int argc, char **argv)
{
    int status = dispatch(argc, argv);
    /* Output that could not be written (a full disk, a closed pipe) is a
     * failure, not a silent success. */
    errno = 0;
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "mproc: writing the output failed%s%s\n",
                errno != 0 ? ": " : "", errno != 0 ? strerror(errno) : "");
        return MPROC_TOOL_FAILED;
    }
    return status;
}
