/*
 * hilos_trabajador.c -- "Anatomía de un Hilo en Python" (seed 001), in C.
 *
 * Python:
 *     def trabajador(nombre):
 *         print(f"[{nombre}] Iniciando...")
 *         time.sleep(2)
 *         print(f"[{nombre}] Terminó.")
 *     t1 = threading.Thread(target=trabajador, args=("Hilo-1",))
 *     t2 = threading.Thread(target=trabajador, args=("Hilo-2",))
 *     t1.start(); t2.start()
 *     t1.join(); t2.join()
 *     print("Todos terminaron.")
 *
 * Both threads sleep at the same time, so the program takes one sleep,
 * not two. The life cycle of the notes maps to the calls: New
 * (mproc_thread_create), Runnable (mproc_thread_start), Terminated
 * (trabajador returns; mproc_thread_join sees it).
 */
#include <stdio.h>
#include <stdlib.h>

#include "mproc.h"

/* Stop with a message if an mproc call failed. */
static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mproc_strerror(rc));
        exit(1);
    }
}

static int trabajador(void *arg)
{
    const char *nombre = arg;
    printf("[%s] Iniciando...\n", nombre);
    /* Simula trabajo. The notes sleep 2 s; 200 ms keeps the example
     * quick under ctest and shows the same overlap. */
    mproc_sleep_ms(200);
    printf("[%s] Terminó.\n", nombre);
    return 0;
}

int main(void)
{
    /* Line-buffered: each line shows up whole, as printed, even in a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Crear hilos (estado New). The names also become the OS names
     * (visible in `top -H`) and appear in error reports. */
    mproc_thread *t1, *t2;
    check(mproc_thread_create(&t1, &(mproc_thread_opts){
              .fn = trabajador, .arg = "Hilo-1", .name = "Hilo-1" }),
          "crear Hilo-1");
    check(mproc_thread_create(&t2, &(mproc_thread_opts){
              .fn = trabajador, .arg = "Hilo-2", .name = "Hilo-2" }),
          "crear Hilo-2");

    /* Iniciar (pone el hilo en estado RUNNABLE). */
    check(mproc_thread_start(t1), "start Hilo-1");
    check(mproc_thread_start(t2), "start Hilo-2");

    /* Esperar a que terminen (bloquea el main thread). */
    int64_t t0 = mproc_now_ns();
    check(mproc_thread_join(t1, -1, NULL), "join Hilo-1");
    check(mproc_thread_join(t2, -1, NULL), "join Hilo-2");
    int64_t ms = (mproc_now_ns() - t0) / 1000000;

    printf("Todos terminaron.\n");
    printf("(esperamos %lld ms: los dos hilos durmieron a la vez)\n", (long long)ms);
    mproc_thread_destroy(t1);
    mproc_thread_destroy(t2);
    return 0;
}
