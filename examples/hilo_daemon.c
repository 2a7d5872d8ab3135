/*
 * hilo_daemon.c -- "Threads Daemon vs Non-Daemon" (seed 001), in C.
 *
 * Python:
 *     t = threading.Thread(target=bucle_infinito, daemon=True)
 *     t.start()
 *     # El programa terminará inmediatamente después de esta línea
 *     # y 't' será asesinado por el SO.
 *
 * A daemon thread ("sirviente": heartbeats, auto-save, RAM monitoring)
 * loops for ever; main does a little work and returns. Because the thread
 * is a daemon, exit does not wait for it: the process ends at once and
 * the thread dies with it, without cleanup. Make it non-daemon
 * (.daemon = false) and the program never ends: exit waits for every
 * non-daemon thread, as Python does.
 */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mproc_strerror(rc));
        exit(1);
    }
}

/* bucle_infinito: a heartbeat every 100 ms, for ever. */
static int latido(void *arg)
{
    (void)arg;
    for (unsigned n = 1;; n++) {
        printf("[latido] sigo vivo (%u)\n", n);
        mproc_sleep_ms(100);
    }
    return 0; /* never reached */
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    mproc_thread *t;
    check(mproc_thread_create(&t, &(mproc_thread_opts){
              .fn = latido, .name = "Latido", .daemon = true }),
          "crear Latido");
    check(mproc_thread_start(t), "start Latido");

    for (int i = 1; i <= 3; i++) {
        printf("Main: trabajando (%d/3)\n", i);
        mproc_sleep_ms(100);
    }
    printf("Main termina; el daemon muere con el proceso.\n");
    /* No join: that is the point. The handle can go; the thread runs on
     * until the process exits. */
    mproc_thread_destroy(t);
    return 0;
}
