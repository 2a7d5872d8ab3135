/*
 * hilos_enumerar.c -- "Identificación y Enumeración" (seed 001), in C.
 *
 * Python:
 *     yo = threading.current_thread()
 *     print(f"Soy: {yo.name} (ID: {yo.native_id})")
 *     for t in threading.enumerate():
 *         print(f"- {t.name} {'(Daemon)' if t.daemon else ''} Estado: {t.is_alive()}")
 *
 * Two threads (one of them a daemon) are kept alive with an event while
 * main lists every thread; then they are released and joined. The native
 * id is the kernel's thread id: the same number `top -H` and
 * /proc/<pid>/task/ show.
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

/* Print "Soy: NAME (ID: N)" for the calling thread. */
static void quien_soy(void)
{
    mproc_thread *yo = mproc_thread_current();
    char nombre[MPROC_THREAD_NAME_MAX + 1];
    mproc_thread_name(yo, nombre, sizeof nombre);
    printf("Soy: %s (ID: %d)\n", nombre, (int)mproc_thread_native_id(yo));
}

typedef struct {
    mproc_semaphore listos; /* one permit per thread that is running */
    mproc_event seguir;     /* main sets it after listing */
} compartido;

static int trabajador(void *arg)
{
    compartido *c = arg;
    quien_soy();
    mproc_semaphore_release(&c->listos, 1);
    mproc_event_wait(&c->seguir, -1);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Hilo actual */
    quien_soy();

    compartido c;
    check(mproc_semaphore_init(&c.listos, 0, 0), "semáforo");
    check(mproc_event_init(&c.seguir, 0), "evento");
    mproc_thread *t[2];
    check(mproc_thread_create(&t[0], &(mproc_thread_opts){
              .fn = trabajador, .arg = &c, .name = "Trabajador" }),
          "crear Trabajador");
    check(mproc_thread_create(&t[1], &(mproc_thread_opts){
              .fn = trabajador, .arg = &c, .name = "Monitor-RAM", .daemon = true }),
          "crear Monitor-RAM");
    for (int i = 0; i < 2; i++) {
        check(mproc_thread_start(t[i]), "start");
        check(mproc_semaphore_acquire(&c.listos, -1), "esperar");
    }

    /* Listar todos */
    mproc_thread_info hilos[16];
    int n = mproc_thread_enumerate(hilos, 16);
    if (n < 0)
        check(n, "enumerate");
    printf("Hilos activos: %d\n", mproc_thread_active_count());
    for (int i = 0; i < n && i < 16; i++)
        printf("- %s %s Estado: %s\n", hilos[i].name,
               hilos[i].daemon ? "(Daemon)" : "", hilos[i].alive ? "True" : "False");

    check(mproc_event_set(&c.seguir), "seguir");
    for (int i = 0; i < 2; i++) {
        check(mproc_thread_join(t[i], -1, NULL), "join");
        /* Once joined, the thread is Terminated: is_alive() is false. */
        char nombre[MPROC_THREAD_NAME_MAX + 1];
        mproc_thread_name(t[i], nombre, sizeof nombre);
        printf("%s terminó. Estado: %s\n", nombre,
               mproc_thread_is_alive(t[i]) ? "True" : "False");
        mproc_thread_destroy(t[i]);
    }
    printf("Hilos activos: %d\n", mproc_thread_active_count());
    mproc_event_destroy(&c.seguir);
    mproc_semaphore_destroy(&c.listos);
    return 0;
}
