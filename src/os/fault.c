/*
 * os/fault.c -- named fault points (see fault.h).
 */
#include "os/fault.h"

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

int mproc__faults_armed;

static const char *armed_name;
static unsigned armed_left; /* passes still to go, counted down atomically */
static void (*armed_action)(const char *name);

void mproc__fault_arm(const char *name, unsigned nth, void (*action)(const char *name))
{
    __atomic_store_n(&mproc__faults_armed, 0, __ATOMIC_SEQ_CST);
    if (!name || nth == 0 || !action)
        return;
    armed_name = name;
    armed_action = action;
    __atomic_store_n(&armed_left, nth, __ATOMIC_RELAXED);
    /* Release: a thread that sees the flag sees the name and action. */
    __atomic_store_n(&mproc__faults_armed, 1, __ATOMIC_RELEASE);
}

void mproc__fault_hit(const char *name)
{
    if (!__atomic_load_n(&mproc__faults_armed, __ATOMIC_ACQUIRE) || strcmp(name, armed_name) != 0)
        return;
    unsigned left = __atomic_load_n(&armed_left, __ATOMIC_RELAXED);
    /* Exactly one pass -- the one taking the count from 1 to 0 -- fires. */
    while (left > 0) {
        if (__atomic_compare_exchange_n(&armed_left, &left, left - 1, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            if (left == 1)
                armed_action(name);
            return;
        }
    }
}

void mproc__fault_kill_self(const char *name)
{
    (void)name;
    raise(SIGKILL);
}

void mproc__fault_stop_self(const char *name)
{
    (void)name;
    raise(SIGSTOP);
}
