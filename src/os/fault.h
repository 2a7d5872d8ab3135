/*
 * os/fault.h -- named fault points, for tests (internal).
 *
 * Library code marks the moments where a crash or a stop matters:
 *
 *     MPROC__FAULT_POINT("queue.put.reserved");
 *
 * Unarmed, a point costs one relaxed load of a global and a predicted
 * branch. A test arms one point of its process with an action that runs
 * when a thread passes it for the nth time -- typically
 * mproc__fault_kill_self, to die with SIGKILL exactly there. Arming is
 * per process (a forked child inherits it; arm after fork in the process
 * that must die). One point is armed at a time.
 */
#ifndef MPROC_OS_FAULT_H
#define MPROC_OS_FAULT_H

extern int mproc__faults_armed;

/* Called when a point is passed while something is armed. */
void mproc__fault_hit(const char *name);

#define MPROC__FAULT_POINT(name)                                             \
    do {                                                                     \
        if (__builtin_expect(__atomic_load_n(&mproc__faults_armed, __ATOMIC_RELAXED), 0)) \
            mproc__fault_hit(name);                                          \
    } while (0)

/*
 * Arm the point called `name` (compared with strcmp; the string must stay
 * valid): its nth pass (1 = the first) from now on runs action(name), in
 * the passing thread. Passes of other points are ignored. name NULL
 * disarms. Not for concurrent use with itself.
 */
void mproc__fault_arm(const char *name, unsigned nth, void (*action)(const char *name));

/* Actions: die at once with SIGKILL / stop with SIGSTOP (a test then
 * inspects or kills the stopped process). */
void mproc__fault_kill_self(const char *name);
void mproc__fault_stop_self(const char *name);

#endif /* MPROC_OS_FAULT_H */
