/*
 * condicion_carrera.c -- a race condition and its fix (seeds 003/004:
 * "condición de carrera", "sección crítica", Lock).
 *
 * Four threads add 1 to a shared counter 100,000 times each, all
 * starting together at a barrier (threading.Barrier). Without a
 * lock, "read the counter, add one, write it back" from two threads
 * interleaves and increments are lost. With mproc_lock around the
 * critical section the total is exact, and the lock's counters show how
 * often a thread found it taken (the notes' "contención").
 *
 * The unlocked counter is read and written with relaxed atomics: the
 * read-modify-write is still split in two, so updates are lost exactly
 * as in Python, but the program has no undefined behaviour.
 */
#include <stdatomic.h>
#include <stdio.h>

#include <mproc.h>

#define HILOS 4
#define INCREMENTOS 100000

static atomic_long contador_sin_lock;
static long contador_con_lock;
static mproc_lock lock;
static mproc_barrier salida; /* all threads start counting together */

static int sumar_sin_lock(void *arg)
{
    (void)arg;
    mproc_barrier_wait(&salida, -1);
    for (int i = 0; i < INCREMENTOS; i++) {
        long v = atomic_load_explicit(&contador_sin_lock, memory_order_relaxed);
        atomic_store_explicit(&contador_sin_lock, v + 1, memory_order_relaxed);
    }
    return 0;
}

static int sumar_con_lock(void *arg)
{
    (void)arg;
    mproc_barrier_wait(&salida, -1);
    for (int i = 0; i < INCREMENTOS; i++) {
        mproc_lock_acquire(&lock, -1); /* with lock: */
        contador_con_lock++;           /*     sección crítica */
        mproc_lock_release(&lock);
    }
    return 0;
}

static int correr(mproc_thread_fn fn)
{
    mproc_thread *t[HILOS];
    for (int i = 0; i < HILOS; i++) {
        int rc = mproc_thread_create(&t[i], &(mproc_thread_opts){ .fn = fn });
        if (rc == 0)
            rc = mproc_thread_start(t[i]);
        if (rc != 0) {
            fprintf(stderr, "no se pudo crear el hilo: %s\n", mproc_strerror(rc));
            return rc;
        }
    }
    for (int i = 0; i < HILOS; i++) {
        mproc_thread_join(t[i], -1, NULL);
        mproc_thread_destroy(t[i]);
    }
    return 0;
}

int main(void)
{
    const long esperado = (long)HILOS * INCREMENTOS;
    mproc_lock_init(&lock, 0);
    mproc_barrier_init(&salida, HILOS, 0);

    if (correr(sumar_sin_lock) != 0)
        return 1;
    long sin = atomic_load(&contador_sin_lock);
    printf("sin lock: %ld de %ld (se perdieron %ld incrementos)\n", sin, esperado,
           esperado - sin);

    if (correr(sumar_con_lock) != 0)
        return 1;
    mproc_lock_counters c;
    mproc_lock_stats(&lock, &c);
    printf("con lock: %ld de %ld (%s)\n", contador_con_lock, esperado,
           contador_con_lock == esperado ? "exacto" : "ERROR");
    printf("contención: %llu de %llu adquisiciones encontraron el lock tomado, "
           "%.2f ms esperando en total\n",
           (unsigned long long)c.contended, (unsigned long long)c.acquisitions,
           (double)c.wait_ns / 1e6);
    mproc_lock_destroy(&lock);
    return contador_con_lock == esperado ? 0 : 1;
}
