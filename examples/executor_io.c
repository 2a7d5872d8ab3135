/*
 * executor_io.c -- seed 000, "Mirando hacia la práctica: ejecutores de
 * alto nivel", the I/O-bound pattern:
 *
 *     # I/O-bound (descargas, llamadas HTTP, lectura de muchos archivos):
 *     with ThreadPoolExecutor(max_workers=8) as executor:
 *         futures = [executor.submit(func_io, arg) for arg in lotes_de_trabajo]
 *         resultados = [f.result() for f in futures]
 *
 * func_io is a "descarga" that only waits: it sleeps 50 ms (the network)
 * and returns the size of what it "downloaded". Twenty of them take 20 x
 * 50 ms one after another; on 8 threads they wait together, 8 at a time,
 * in about 3 rounds of 50 ms. A thread that waits uses no CPU, so this
 * works even on a single core (and, in Python, despite the GIL).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#define DESCARGAS 20
#define HILOS 8
#define ESPERA_MS 50

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

/* Download number i: wait for the "network", return its size in bytes. */
static int descargar(int i)
{
    mproc_sleep_ms(ESPERA_MS);
    return 1024 * (i + 1);
}

/* func_io: descargar as an executor task (argument and result: an int). */
static int func_io(const void *arg, size_t len, mproc_ctx *ctx)
{
    if (len != sizeof(int))
        return mproc_fail(ctx, -EINVAL, "func_io espera un int, no %zu bytes", len);
    int bytes = descargar(*(const int *)arg);
    return mproc_return(ctx, &bytes, sizeof bytes);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int lotes_de_trabajo[DESCARGAS];
    for (int i = 0; i < DESCARGAS; i++)
        lotes_de_trabajo[i] = i;

    /* Secuencial: resultados = [func_io(arg) for arg in lotes_de_trabajo] */
    int64_t t0 = mproc_now_ns();
    long total_sec = 0;
    for (int i = 0; i < DESCARGAS; i++)
        total_sec += descargar(lotes_de_trabajo[i]);
    double ms_sec = (double)(mproc_now_ns() - t0) / 1e6;
    printf("secuencial: %d descargas, %ld bytes en %.0f ms\n",
           DESCARGAS, total_sec, ms_sec);

    /* Hilos: with ThreadPoolExecutor(max_workers=8) as executor: */
    t0 = mproc_now_ns();
    mproc_executor *executor;
    check(mproc_executor_create(&executor, &(mproc_executor_opts){
              .kind = MPROC_THREADS, .workers = HILOS, .name = "descarga" }),
          "crear el executor");

    /* futures = [executor.submit(func_io, arg) for arg in lotes_de_trabajo]
     * (each argument is passed by reference; the array outlives them). */
    mproc_future *futures[DESCARGAS];
    for (int i = 0; i < DESCARGAS; i++)
        check(mproc_submit(executor, func_io, &lotes_de_trabajo[i],
                           sizeof lotes_de_trabajo[i], &futures[i]),
              "submit");

    /* resultados = [f.result() for f in futures] */
    long total_hilos = 0;
    for (int i = 0; i < DESCARGAS; i++) {
        const void *data;
        int rc = mproc_future_result(futures[i], -1, &data, NULL);
        if (rc != 0) {
            const char *msg = "";
            mproc_future_error(futures[i], NULL, &msg);
            fprintf(stderr, "descarga %d: %s %s\n", i, mproc_strerror(rc), msg);
            return 1;
        }
        total_hilos += como_int(data);
        mproc_future_release(futures[i]);
    }
    mproc_executor_destroy(executor);
    double ms_hilos = (double)(mproc_now_ns() - t0) / 1e6;
    printf("%d hilos: %d descargas, %ld bytes en %.0f ms\n",
           HILOS, DESCARGAS, total_hilos, ms_hilos);

    printf("aceleración: %.1fx (ideal: %d descargas / %d rondas de %d = %.1fx)\n",
           ms_sec / ms_hilos, DESCARGAS, (DESCARGAS + HILOS - 1) / HILOS, HILOS,
           (double)DESCARGAS / ((DESCARGAS + HILOS - 1) / HILOS));
    if (total_hilos != total_sec) {
        fprintf(stderr, "los totales no coinciden: %ld != %ld\n", total_hilos, total_sec);
        return 1;
    }
    return 0;
}
