/*
 * pool_cuadrado.c -- seed 004, "Pool de procesos":
 *
 *     def cuadrado(x):
 *         return x * x
 *
 *     with Pool(4) as pool:
 *         resultados = pool.map(cuadrado, range(10))
 *
 * and its variants: apply() runs the function on one argument and waits,
 * map_async() is map that does not block. Here on a process executor
 * (MPROC_PROCESSES): four worker processes, fed through shared memory.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static int cuadrado(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    int x;
    memcpy(&x, arg, sizeof x);
    int y = x * x;                          /* return x * x */
    return mproc_return(ctx, &y, sizeof y);
}

static void imprimir(const char *titulo, const mproc_results *r)
{
    printf("%s [", titulo);
    for (size_t i = 0; i < mproc_results_count(r); i++) {
        mproc_item it;
        int v = -1;
        if (mproc_results_get(r, i, &it) == 0)
            memcpy(&v, it.data, sizeof v);
        printf("%s%d", i ? ", " : "", v);
    }
    printf("]\n");
}

int main(void)
{
    mproc_executor *pool;                   /* with Pool(4) as pool: */
    int rc = mproc_executor_create(&pool, &(mproc_executor_opts){ .kind = MPROC_PROCESSES,
                                                                  .workers = 4 });
    if (rc != 0) {
        fprintf(stderr, "Pool(4): %s\n", mproc_strerror(rc));
        return 1;
    }
    int rango[10];                          /* range(10) */
    for (int i = 0; i < 10; i++)
        rango[i] = i;

    mproc_results *resultados;              /* pool.map(cuadrado, range(10)) */
    rc = mproc_map(pool, cuadrado, rango, sizeof rango[0], 10, NULL, &resultados);
    if (rc == 0)
        imprimir("map:", resultados);
    mproc_results_destroy(resultados);

    int siete = 7;                          /* pool.apply(cuadrado, (7,)) */
    mproc_future *f;
    if (rc == 0 && (rc = mproc_apply(pool, cuadrado, &siete, sizeof siete, &f)) == 0) {
        const void *d;
        int v;
        mproc_future_result(f, -1, &d, NULL);
        memcpy(&v, d, sizeof v);
        printf("apply: cuadrado(7) = %d\n", v);
        mproc_future_release(f);
    }

    mproc_future *listo;                    /* r = pool.map_async(cuadrado, range(10)) */
    if (rc == 0 && (rc = mproc_map_async(pool, cuadrado, rango, sizeof rango[0], 10, NULL,
                                         NULL, NULL, NULL, &resultados, &listo)) == 0) {
        printf("map_async: lanzado, el programa sigue\n");
        rc = mproc_future_result(listo, -1, NULL, NULL); /* r.get() */
        if (rc == 0)
            imprimir("map_async:", resultados);
        mproc_future_release(listo);
        mproc_results_destroy(resultados);
    }
    mproc_executor_destroy(pool);
    if (rc != 0)
        fprintf(stderr, "pool: %s\n", mproc_strerror(rc));
    return rc == 0 ? 0 : 1;
}
