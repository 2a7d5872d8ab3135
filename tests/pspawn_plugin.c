/*
 * tests/pspawn_plugin.c -- a plugin that test_pspawn loads with dlopen:
 * a library the program was not linked with, so a spawned worker (a fresh
 * start of the program) does not have it. Built twice (plugin a and b),
 * to be loaded before and after the test's first spawn.
 */
#include <errno.h>
#include <stddef.h>

#include "mproc/workers.h"

int pspawn_plugin_task(const void *arg, size_t len, mproc_ctx *ctx);
int pspawn_plugin_init(void *arg);

int pspawn_plugin_task(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return -EDOM; /* never runs in a spawned worker */
}

int pspawn_plugin_init(void *arg)
{
    (void)arg;
    return -EDOM;
}
