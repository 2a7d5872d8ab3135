/*
 * executor_cpu.c -- seed 000, "Mirando hacia la práctica: ejecutores de
 * alto nivel", the CPU-bound pattern with map and chunksize:
 *
 *     # Ejemplo de chunksize con ProcessPoolExecutor.map
 *     with ProcessPoolExecutor(max_workers=8) as ex:
 *         for res in ex.map(func_cpu, iterable, chunksize=100):
 *             manejar(res)
 *
 * func_cpu counts the primes below a bound by trial division: pure
 * computation, no waiting. The 2000 bounds go out in tasks of 100 items
 * (chunksize=100: 20 tasks instead of 2000, less scheduling overhead).
 * The same map runs with 1 worker and with one per CPU: the speed-up can
 * only come from more cores working at once, so it is at most the number
 * of CPUs.
 *
 * Python needs processes here because of the GIL; C threads already run
 * on all cores. The same task code runs on a thread executor and on a
 * process executor (ProcessPoolExecutor): `.kind` is the only difference.
 * Processes pay for copying items and results between address spaces,
 * and buy isolation: a crash there fails only its own chunk.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#define ITEMS 2000
#define CHUNKSIZE 100
#define LIMITE_BASE 8000  /* item i counts the primes below LIMITE_BASE + i */

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

static bool es_primo(int n)
{
    if (n < 2)
        return false;
    for (int d = 2; d * d <= n; d++)
        if (n % d == 0)
            return false;
    return true;
}

/* func_cpu(limite): how many primes are below limite. */
static int func_cpu(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int))
        return mproc_fail(ctx, -EINVAL, "func_cpu espera un int, no %zu bytes", len);
    int limite = *(const int *)arg, primos = 0;
    for (int n = 2; n < limite; n++)
        primos += es_primo(n);
    return mproc_return(ctx, &primos, sizeof primos);
}

/*
 * with executor(max_workers=workers) as ex:
 *     for res in ex.map(func_cpu, iterable, chunksize=100): manejar(res)
 * Stores the results in res[] and returns the time taken in ms.
 */
static double ejecutar(mproc_executor_kind kind, unsigned workers, const int *iterable,
                       int *res)
{
    int64_t t0 = mproc_now_ns();
    mproc_executor *ex;
    check(mproc_executor_create(&ex, &(mproc_executor_opts){
              .kind = kind, .workers = workers, .name = "primos" }),
          "crear el executor");
    int n_workers = mproc_executor_workers(ex);

    mproc_results *r;
    int rc = mproc_map(ex, func_cpu, iterable, sizeof iterable[0], ITEMS,
                       &(mproc_map_opts){ .chunksize = CHUNKSIZE }, &r);
    if (rc != 0 && !r)
        check(rc, "map");
    for (size_t i = 0; i < ITEMS; i++) {
        mproc_item item = { .message = "" };
        rc = mproc_results_get(r, i, &item);
        if (rc != 0) {
            fprintf(stderr, "func_cpu(%d): %s %s\n", iterable[i],
                    mproc_strerror(rc), item.message);
            exit(1);
        }
        res[i] = como_int(item.data); /* manejar(res) */
    }
    mproc_results_destroy(r);
    mproc_executor_destroy(ex);
    double ms = (double)(mproc_now_ns() - t0) / 1e6;
    printf("%s, %d trabajador%s: %.0f ms\n", kind == MPROC_THREADS ? "hilos" : "procesos",
           n_workers, n_workers == 1 ? "" : "es", ms);
    return ms;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    static int iterable[ITEMS], uno[ITEMS], todos[ITEMS], p_uno[ITEMS], p_todos[ITEMS];
    for (int i = 0; i < ITEMS; i++)
        iterable[i] = LIMITE_BASE + i;
    printf("%d items, chunksize=%d: %d tareas\n", ITEMS, CHUNKSIZE,
           (ITEMS + CHUNKSIZE - 1) / CHUNKSIZE);

    double ms_uno = ejecutar(MPROC_THREADS, 1, iterable, uno);
    double ms_todos = ejecutar(MPROC_THREADS, 0, iterable, todos); /* 0: una por CPU */
    printf("hilos, aceleración: %.2fx\n", ms_uno / ms_todos);
    double mp_uno = ejecutar(MPROC_PROCESSES, 1, iterable, p_uno);
    double mp_todos = ejecutar(MPROC_PROCESSES, 0, iterable, p_todos);
    printf("procesos, aceleración: %.2fx\n", mp_uno / mp_todos);

    long suma = 0;
    bool iguales = true;
    for (int i = 0; i < ITEMS; i++) {
        suma += uno[i];
        iguales = iguales && uno[i] == todos[i] && uno[i] == p_uno[i] && uno[i] == p_todos[i];
    }
    printf("primos por debajo de %d: %d; de %d: %d\n", iterable[0], uno[0],
           iterable[ITEMS - 1], uno[ITEMS - 1]);
    printf("suma de los %d resultados: %ld\n", ITEMS, suma);
    printf("resultados iguales: %s\n", iguales ? "sí" : "NO");
    return iguales ? 0 : 1;
}
