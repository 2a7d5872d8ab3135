/*
 * exec/wait.c -- waiting for many futures: mproc_wait and as_completed.
 *
 * Both register a waiter on each future (exec/future.c). A future tells
 * its waiters it finished while holding its own lock, and unregistering
 * takes that lock, so once a waiter is unregistered no notification for
 * it is still running and its memory may go. Lock order: a future's lock,
 * then an iterator's lock; nothing here takes a future's lock while
 * holding an iterator's.
 */
#include <errno.h>
#include <stdlib.h>

#include "exec/exec_internal.h"
#include "os/atomic.h"
#include "os/sys.h"

/* Milliseconds left until deadline, rounded up; -1 for forever. */
static int64_t ms_left(int64_t deadline)
{
    if (deadline == MPROC__FOREVER)
        return -1;
    int64_t ns = deadline - mproc__now();
    return ns <= 0 ? 0 : (ns + 999999) / 1000000;
}

/* ---- mproc_wait ---------------------------------------------------------- */

struct wait_slot {
    struct mproc__waiter w; /* first: the notify callback gets &w */
    mproc_event *ev;
};

static void wake_waiter(struct mproc__waiter *w, mproc_future *f)
{
    (void)f;
    mproc_event_set(((struct wait_slot *)w)->ev);
}

/* Is the condition met? Counts finished (and failed) futures. */
static bool condition_met(mproc_future *const *fs, size_t n, mproc_return_when when,
                          size_t *ndone)
{
    size_t done = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        int code;
        if (mproc_future_error(fs[i], &code, NULL) == 0) {
            done++;
            failed += code != 0;
        }
    }
    *ndone = done;
    switch (when) {
    case MPROC_FIRST_COMPLETED:
        return done > 0;
    case MPROC_FIRST_EXCEPTION:
        return failed > 0 || done == n;
    default:
        return done == n;
    }
}

int mproc_wait(mproc_future *const *fs, size_t n, int64_t timeout_ms,
               mproc_return_when when, bool *done, size_t *ndone)
{
    if ((!fs && n > 0) || (when != MPROC_FIRST_COMPLETED && when != MPROC_FIRST_EXCEPTION &&
                           when != MPROC_ALL_COMPLETED))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    if (n == 0) { /* nothing to wait for: every condition holds */
        if (ndone)
            *ndone = 0;
        return 0;
    }

    size_t count;
    bool met = condition_met(fs, n, when, &count);
    if (!met && timeout_ms != 0) {
        mproc_event ev;
        mproc_event_init(&ev, 0);
        struct wait_slot local[16], *slots = n <= 16 ? local : malloc(n * sizeof *slots);
        if (!slots)
            return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
            slots[i] = (struct wait_slot){ .w = { .notify = wake_waiter }, .ev = &ev };
            if (mproc__future_watch(fs[i], &slots[i].w))
                slots[i].ev = NULL; /* finished already: not registered */
        }
        for (;;) {
            mproc_event_clear(&ev);
            if ((met = condition_met(fs, n, when, &count)))
                break;
            if (mproc_event_wait(&ev, ms_left(deadline)) == -ETIMEDOUT) {
                met = condition_met(fs, n, when, &count);
                break;
            }
        }
        for (size_t i = 0; i < n; i++)
            if (slots[i].ev)
                mproc__future_unwatch(fs[i], &slots[i].w);
        if (slots != local)
            free(slots);
        mproc_event_destroy(&ev);
    }
    /* One snapshot for the flags and the count, so they agree (more
     * futures may have finished since the condition was decided). */
    count = 0;
    for (size_t i = 0; i < n; i++) {
        bool d = mproc_future_done(fs[i]);
        count += d;
        if (done)
            done[i] = d;
    }
    if (ndone)
        *ndone = count;
    return met ? 0 : -ETIMEDOUT;
}

/* ---- as_completed ------------------------------------------------------ */

struct ac_slot {
    struct mproc__waiter w; /* first, as above */
    mproc_as_completed *it;
    size_t index;
    bool watched;
};

struct mproc_as_completed {
    size_t n, yielded;
    mproc_future **fs;      /* our own references */
    struct ac_slot *slots;
    mproc_lock lock;        /* guards the ready queue */
    size_t *ready;          /* indices finished, not yet yielded: a ring */
    size_t ready_head, nready;
    mproc_event ev;         /* set when `ready` gains an entry */
};

static void push_ready(mproc_as_completed *it, size_t index)
{
    mproc_lock_acquire(&it->lock, -1);
    it->ready[(it->ready_head + it->nready++) % it->n] = index;
    mproc_lock_release(&it->lock);
    mproc_event_set(&it->ev);
}

static void ac_notify(struct mproc__waiter *w, mproc_future *f)
{
    (void)f;
    struct ac_slot *s = (struct ac_slot *)w;
    push_ready(s->it, s->index);
}

void mproc_as_completed_destroy(mproc_as_completed *it)
{
    if (!it)
        return;
    for (size_t i = 0; i < it->n; i++) {
        if (it->slots && it->slots[i].watched)
            mproc__future_unwatch(it->fs[i], &it->slots[i].w);
        if (it->fs && it->fs[i])
            mproc_future_release(it->fs[i]);
    }
    free(it->fs);
    free(it->slots);
    free(it->ready);
    mproc_lock_destroy(&it->lock);
    mproc_event_destroy(&it->ev);
    free(it);
}

int mproc_as_completed_create(mproc_as_completed **out, mproc_future *const *fs, size_t n)
{
    if (!out || (!fs && n > 0))
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!fs[i])
            return -EINVAL;
    mproc_as_completed *it = calloc(1, sizeof *it);
    if (!it)
        return -ENOMEM;
    it->n = n;
    mproc_lock_init(&it->lock, 0);
    mproc_event_init(&it->ev, 0);
    it->fs = calloc(n ? n : 1, sizeof *it->fs);
    it->slots = calloc(n ? n : 1, sizeof *it->slots);
    it->ready = calloc(n ? n : 1, sizeof *it->ready);
    if (!it->fs || !it->slots || !it->ready) {
        mproc_as_completed_destroy(it);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        it->fs[i] = mproc_future_retain(fs[i]);
        it->slots[i] = (struct ac_slot){ .w = { .notify = ac_notify }, .it = it, .index = i };
    }
    for (size_t i = 0; i < n; i++) {
        if (mproc__future_watch(fs[i], &it->slots[i].w))
            push_ready(it, i); /* finished already */
        else
            it->slots[i].watched = true;
    }
    *out = it;
    return 0;
}

int mproc_as_completed_next(mproc_as_completed *it, int64_t timeout_ms, mproc_future **f)
{
    if (!it || !f)
        return -EINVAL;
    int64_t deadline;
    int rc = mproc__deadline(timeout_ms, &deadline);
    if (rc != 0)
        return rc;
    for (;;) {
        mproc_lock_acquire(&it->lock, -1);
        if (it->nready > 0) {
            size_t i = it->ready[it->ready_head];
            it->ready_head = (it->ready_head + 1) % it->n;
            it->nready--;
            it->yielded++;
            mproc_lock_release(&it->lock);
            *f = it->fs[i];
            return 1;
        }
        if (it->yielded == it->n) {
            mproc_lock_release(&it->lock);
            return 0;
        }
        /* Cleared under the lock: a push after this unlock sets it again. */
        mproc_event_clear(&it->ev);
        mproc_lock_release(&it->lock);
        if (mproc_event_wait(&it->ev, ms_left(deadline)) == -ETIMEDOUT) {
            mproc_lock_acquire(&it->lock, -1);
            bool any = it->nready > 0;
            mproc_lock_release(&it->lock);
            if (!any)
                return -ETIMEDOUT;
        }
    }
}
