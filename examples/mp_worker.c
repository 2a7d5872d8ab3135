/*
 * mp_worker.c -- seed 002, "Ejercicio Práctico: mp_worker.py":
 *
 *     Run several Process instances doing CPU-bound work in parallel,
 *     time the whole, and compare with the sequential version, to show
 *     that several cores are really used.
 *
 * Each task is an arithmetic loop. The sequential run does the tasks one
 * after another in this process; the parallel run gives each to its own
 * process (mproc_process). Results travel back through shared memory
 * (mproc_shared_calloc) and must match. The speed-up depends on the
 * machine: up to the number of CPUs.
 */
#include <stdint.h>
#include <stdio.h>

#include <mproc.h>

#define TAREAS 4
#define PASOS 40000000ull

static uint64_t *resultados; /* one per task, shared with the children */

static uint64_t trabajo(uint64_t semilla)
{
    uint64_t x = semilla | 1;
    for (uint64_t i = 0; i < PASOS; i++) { /* xorshift64: pure CPU */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    return x;
}

static int tarea(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    int i = *(const int *)arg;
    resultados[i] = trabajo((uint64_t)i + 1);
    return 0;
}

int main(void)
{
    resultados = mproc_shared_calloc(TAREAS * sizeof *resultados);
    if (!resultados)
        return 1;
    uint64_t esperado[TAREAS];
    int64_t t0 = mproc_now_ns();
    for (int i = 0; i < TAREAS; i++)
        esperado[i] = trabajo((uint64_t)i + 1);
    double secuencial = (double)(mproc_now_ns() - t0) / 1e9;

    mproc_process *p[TAREAS];
    t0 = mproc_now_ns();
    for (int i = 0; i < TAREAS; i++) {
        int rc = mproc_process_create(&p[i], &(mproc_process_opts){ .fn = tarea, .arg = &i,
                                                                    .len = sizeof i });
        if (rc == 0)
            rc = mproc_process_start(p[i]);
        if (rc != 0) {
            fprintf(stderr, "proceso %d: %s\n", i, mproc_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < TAREAS; i++)
        mproc_process_join(p[i], -1);
    double paralelo = (double)(mproc_now_ns() - t0) / 1e9;

    int bien = 1;
    for (int i = 0; i < TAREAS; i++) {
        int code = -1;
        mproc_process_exitcode(p[i], &code);
        bien &= code == 0 && resultados[i] == esperado[i];
        mproc_process_destroy(p[i]);
    }
    printf("%d tareas CPU-bound, %u CPUs\n", TAREAS, mproc_cpu_count());
    printf("secuencial: %.3f s\n", secuencial);
    printf("%d procesos: %.3f s\n", TAREAS, paralelo);
    printf("aceleración: %.2fx\n", secuencial / paralelo);
    printf("resultados iguales a los secuenciales: %s\n", bien ? "sí" : "NO");
    return bien ? 0 : 1;
}
