/*
 * sync/backoff.c -- exponential back-off with jitter.
 *
 * Each wait picks a random time in [d/2, d] ("equal jitter": contenders
 * that collided once spread out instead of colliding again in step), then
 * doubles d up to the cap. Below SPIN_LIMIT_NS the wait spins on the
 * clock with the CPU's pause instruction, since sleeping for less than a
 * wake-up costs would oversleep by far; above it, it sleeps.
 */
#include <errno.h>
#include <time.h>

#include "mproc/sync.h"
#include "os/atomic.h"
#include "os/sys.h"

#define DEFAULT_MIN_NS 100u
#define DEFAULT_MAX_NS 1000000u
#define SPIN_LIMIT_NS  50000u

int mproc_backoff_init(mproc_backoff *b, uint64_t min_ns, uint64_t max_ns)
{
    if (!b)
        return -EINVAL;
    if (min_ns == 0)
        min_ns = DEFAULT_MIN_NS;
    if (max_ns == 0)
        max_ns = min_ns > DEFAULT_MAX_NS ? min_ns : DEFAULT_MAX_NS;
    if (min_ns > max_ns)
        return -EINVAL;
    b->_min_ns = min_ns;
    b->_max_ns = max_ns;
    b->_delay_ns = min_ns;
    b->_attempts = 0;
    b->_pad = 0;
    /* Seed differs per object and per call time; never 0 (xorshift). */
    b->_rng = ((uint64_t)(uintptr_t)b * 0x9e3779b97f4a7c15ull) ^
              (uint64_t)mproc_now_ns() ^ 1;
    return 0;
}

uint64_t mproc_backoff_wait(mproc_backoff *b)
{
    uint64_t d = b->_delay_ns;
    uint64_t ns = d / 2 + mproc__xorshift64(&b->_rng) % (d - d / 2 + 1);
    if (ns < SPIN_LIMIT_NS) {
        int64_t end = mproc_now_ns() + (int64_t)ns;
        do {
            for (int i = 0; i < 8; i++)
                mproc__cpu_relax();
        } while (mproc_now_ns() < end);
    } else {
        struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    b->_delay_ns = d * 2 > b->_max_ns ? b->_max_ns : d * 2;
    b->_attempts++;
    return ns;
}

void mproc_backoff_reset(mproc_backoff *b)
{
    b->_delay_ns = b->_min_ns;
    b->_attempts = 0;
}

uint32_t mproc_backoff_attempts(const mproc_backoff *b)
{
    return b->_attempts;
}
