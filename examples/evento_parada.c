/*
 * evento_parada.c -- "Nunca hagas force kill de un hilo" (seed 001), in C.
 *
 * Python has no thread.stop() or kill(): killing a thread half-way could
 * leave files open and locks held. The solution in the notes is a stop
 * flag ("poison pill") the thread checks between pieces of work:
 *     stop_event = threading.Event()
 *     # En el hilo:
 *     while not stop_event.is_set():
 *         trabajar()
 * Main sets the flag when it wants the thread to end, and joins it; the
 * thread finishes the piece of work in hand and leaves cleanly.
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

static mproc_event stop_event;

/* One piece of work: 50 ms of "I/O". */
static void trabajar(int iteracion)
{
    printf("Trabajando... (iteración %d)\n", iteracion);
    mproc_sleep_ms(50);
}

static int hilo(void *arg)
{
    (void)arg;
    int n = 0;
    while (mproc_event_is_set(&stop_event) == 0)
        trabajar(++n);
    printf("Hilo: bandera de parada recibida tras %d iteraciones; "
           "cierro recursos y salgo.\n", n);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    check(mproc_event_init(&stop_event, 0), "evento");

    mproc_thread *t;
    check(mproc_thread_create(&t, &(mproc_thread_opts){
              .fn = hilo, .name = "Trabajador" }),
          "crear hilo");
    check(mproc_thread_start(t), "start");

    mproc_sleep_ms(300); /* let it do some iterations */
    printf("Main: pidiendo al hilo que pare.\n");
    check(mproc_event_set(&stop_event), "set");
    check(mproc_thread_join(t, -1, NULL), "join");
    printf("Main: el hilo terminó limpiamente.\n");

    mproc_thread_destroy(t);
    mproc_event_destroy(&stop_event);
    return 0;
}
