/*
 * executor_tarea.c -- seed 001, "ThreadPoolExecutor: La Manera Moderna".
 *
 * Python:
 *     def tarea(n):
 *         time.sleep(1)
 *         return n * n
 *
 *     with ThreadPoolExecutor(max_workers=4) as executor:
 *         futuro = executor.submit(tarea, 10)
 *         resultados = executor.map(tarea, range(10))
 *         print(futuro.result())
 *         print(list(resultados))
 *
 * The notes sleep 1 s per task; 100 ms here keeps the example quick under
 * ctest and shows the same thing: 11 tasks (the submit plus the 10 of the
 * map) on 4 workers run 4 at a time, in about 3 rounds of 100 ms, not 11.
 *
 * In C a task takes its argument as bytes (a pointer to an int here) and
 * hands back its result with mproc_return. Python's executor.map returns a
 * lazy generator; mproc_map waits for every item and returns them all, in
 * order (mproc_imap is the lazy one).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#define TRABAJADORES 4
#define DORMIR_MS 100 /* time.sleep(1) in the notes */

/* How many tareas run right now, and the most seen at once. */
static atomic_int activas, max_activas;

/* Stop with a message if an mproc call failed. */
static void check(int rc, const char *what)
{
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", what, mproc_strerror(rc));
        exit(1);
    }
}

/* A result is a byte string with no alignment promise: copy the int out. */
static int como_int(const void *data)
{
    int v;
    memcpy(&v, data, sizeof v);
    return v;
}

/* def tarea(n): time.sleep(1); return n * n */
static int tarea(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int))
        return mproc_fail(ctx, -EINVAL, "tarea espera un int, no %zu bytes", len);
    int n = *(const int *)arg;

    int ahora = atomic_fetch_add(&activas, 1) + 1;
    int max = atomic_load(&max_activas);
    while (ahora > max && !atomic_compare_exchange_weak(&max_activas, &max, ahora))
        ;
    mproc_sleep_ms(DORMIR_MS);
    atomic_fetch_sub(&activas, 1);

    int r = n * n;
    return mproc_return(ctx, &r, sizeof r);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* with ThreadPoolExecutor(max_workers=4) as executor: */
    mproc_executor *executor;
    check(mproc_executor_create(&executor, &(mproc_executor_opts){
              .kind = MPROC_THREADS, .workers = TRABAJADORES, .name = "tarea" }),
          "crear el executor");
    int64_t t0 = mproc_now_ns();

    /* Submit: envía una tarea y devuelve un Future inmediatamente. The
     * argument is passed by reference: `diez` outlives the future. */
    static const int diez = 10;
    mproc_future *futuro;
    check(mproc_submit(executor, tarea, &diez, sizeof diez, &futuro), "submit");

    /* Map: aplica la función a range(10), en paralelo, un item por
     * tarea (chunksize=1, as ThreadPoolExecutor.map). */
    int numeros[10];
    for (int i = 0; i < 10; i++)
        numeros[i] = i;
    mproc_results *resultados;
    int rc = mproc_map(executor, tarea, numeros, sizeof numeros[0], 10,
                       &(mproc_map_opts){ .chunksize = 1 }, &resultados);
    if (rc != 0 && !resultados)
        check(rc, "map");

    /* print(futuro.result()): blocks until the result is there; a failed
     * task's error comes back here (Python re-raises its exception). */
    const void *data;
    size_t len;
    rc = mproc_future_result(futuro, -1, &data, &len);
    if (rc != 0) {
        const char *msg = "";
        mproc_future_error(futuro, NULL, &msg);
        fprintf(stderr, "tarea(10): %s %s\n", mproc_strerror(rc), msg);
        return 1;
    }
    printf("%d\n", como_int(data));
    mproc_future_release(futuro);

    /* print(list(resultados)) */
    printf("[");
    for (size_t i = 0; i < mproc_results_count(resultados); i++) {
        mproc_item item = { .message = "" };
        rc = mproc_results_get(resultados, i, &item);
        if (rc != 0) {
            fprintf(stderr, "\ntarea(%zu): %s %s\n", i, mproc_strerror(rc), item.message);
            return 1;
        }
        printf("%s%d", i ? ", " : "", como_int(item.data));
    }
    printf("]\n");
    mproc_results_destroy(resultados);

    /* Leaving the `with` block: shut down, waiting for the workers. */
    mproc_executor_destroy(executor);
    int64_t ms = (mproc_now_ns() - t0) / 1000000;
    printf("tiempo: %lld ms para 11 tareas de %d ms en %d hilos "
           "(unas 3 rondas, no 11)\n", (long long)ms, DORMIR_MS, TRABAJADORES);
    printf("máximo de tareas a la vez: %d\n", atomic_load(&max_activas));
    return 0;
}
