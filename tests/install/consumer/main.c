/* Four threads add to one counter under a lock (threading.Lock). */
#include <mproc.h>
#include <stdio.h>

static mproc_lock lock;
static long counter;

static int add(void *arg)
{
    for (long i = 0; i < *(long *)arg; i++) {
        mproc_lock_acquire(&lock, -1); /* with lock: */
        counter++;                     /*     counter += 1 */
        mproc_lock_release(&lock);
    }
    return 0;
}

int main(void)
{
    long n = 100000;
    mproc_thread *t[4];
    mproc_lock_init(&lock, 0);
    for (int i = 0; i < 4; i++) {
        int rc = mproc_thread_create(&t[i], &(mproc_thread_opts){ .fn = add, .arg = &n });
        if (rc < 0 || (rc = mproc_thread_start(t[i])) < 0)
            return fprintf(stderr, "thread: %s\n", mproc_strerror(rc)), 1;
    }
    for (int i = 0; i < 4; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
    }
    printf("counter = %ld (expected 400000)\n", counter);
    return counter == 4 * n ? 0 : 1;
}
