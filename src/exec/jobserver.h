/*
 * exec/jobserver.h -- a client of the GNU make jobserver: one pool of CPU
 * tokens shared by the processes of a program, and by `make -j` when the
 * program runs under it (internal; used by MPROC_JOBSERVER executors).
 *
 * The protocol (GNU make's): a pipe or named fifo holds one byte per
 * free token. A process owns one implicit token for itself; for each
 * more job it wants to run at the same time it reads a byte, and writes
 * the same byte back when that job ends. jobserver.c explains how the
 * pool is found or made, and what happens when processes die.
 *
 * All calls are thread-safe within a process. The state is per process:
 * a child made by fork starts with its implicit token free and holding
 * no tokens (its parent took the token for the job the child runs, as
 * make does), but keeps the parent's pool.
 */
#ifndef MPROC_EXEC_JOBSERVER_H
#define MPROC_EXEC_JOBSERVER_H

/*
 * mproc__jobserver_init - find the pool (once per process; later calls
 * return at once): the jobserver named in MAKEFLAGS if it can be used,
 * else a new pool of mproc_cpu_count() tokens, exported in MAKEFLAGS for
 * descendants. Calls setenv() the first time when it makes a pool: call
 * it while no other thread reads the environment. Returns 0, or -errno
 * when not even a new pool could be made (-EMFILE, ...).
 */
int mproc__jobserver_init(void);

/*
 * mproc__jobserver_try_acquire - take one token without blocking: the
 * process's implicit token if it is free, else a byte from the pool.
 * Returns 1 (got one: give it back with mproc__jobserver_release), 0 (none
 * free now: poll mproc__jobserver_fd for POLLIN and try again), or a
 * negative code (-EINVAL before init, -EIO and others: the pool failed).
 */
int mproc__jobserver_try_acquire(void);

/*
 * mproc__jobserver_release - give back one token taken by try_acquire
 * (a byte read from the pool goes back first, byte for byte; then the
 * implicit token). Returns 0, -EINVAL (no token held), or -errno when the
 * write failed (that token is lost, as it would be if we had died).
 */
int mproc__jobserver_release(void);

/* mproc__jobserver_fd - the descriptor to poll for POLLIN while waiting
 * for a token (it stays open for the life of the process), or -1 before
 * init. A token freed by another thread of this process as the implicit
 * one does not make it readable: pollers also wake on a timer. */
int mproc__jobserver_fd(void);

/*
 * mproc__jobserver_note_fds - look at MAKEFLAGS now and remember which
 * inherited descriptors (--jobserver-auth=R,W) are open pipes. The
 * library does this when it is loaded, before the program opens files
 * that could take those numbers; init joins such a pool only if R and W
 * are still the pipes seen here. Tests that set MAKEFLAGS later call it
 * again to say "these were inherited".
 */
void mproc__jobserver_note_fds(void);

#endif /* MPROC_EXEC_JOBSERVER_H */
