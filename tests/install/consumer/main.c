/* Four threads add to a counter under a lock; an event starts them together. */
#include <mproc.h>
#include <stdio.h>

#define THREADS 4
#define ROUNDS 100000

static mproc_lock lock;   /* threading.Lock()  */
static mproc_event go;    /* threading.Event() */
static long counter;

static int add(void *arg)
{
    (void)arg;
    mproc_event_wait(&go, -1);          /* go.wait() */
    for (int i = 0; i < ROUNDS; i++) {
        mproc_lock_acquire(&lock, -1);  /* with lock: */
        counter++;                      /*     counter += 1 */
        mproc_lock_release(&lock);
    }
    return 0;
}

int main(void)
{
    mproc_thread *t[THREADS];
    mproc_lock_init(&lock, 0);
    mproc_event_init(&go, 0);
    for (int i = 0; i < THREADS; i++) {
        int rc = mproc_thread_create(&t[i], &(mproc_thread_opts){ .fn = add });
        if (rc == 0)
            rc = mproc_thread_start(t[i]);
        if (rc < 0) {
            fprintf(stderr, "thread: %s\n", mproc_strerror(rc));
            return 1;
        }
    }
    mproc_event_set(&go);               /* go.set(): all start at once */
    for (int i = 0; i < THREADS; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
    }
    printf("counter = %ld (expected %d)\n", counter, THREADS * ROUNDS);
    return counter == THREADS * ROUNDS ? 0 : 1;
}
