/*
 * lock_valor.c -- seed 004, "Protección con Lock":
 *
 *     val = Value('i', 0)
 *     lock = Lock()
 *     with lock:
 *         val.value += 1
 *
 * Four processes increment one integer in shared memory 10,000 times
 * each, under an mproc_lock made with MPROC_SHARED. Both the integer and
 * the lock live in mproc_shared_calloc memory, which forked children
 * share with their parent. (ipc's mproc_value packs the same pair; see
 * valor_array.c.)
 */
#include <stdio.h>

#include <mproc.h>

#define PROCESOS 4
#define INCREMENTOS 10000

struct compartido {
    mproc_lock lock;
    mproc_barrier salida; /* the processes start counting together */
    int valor;            /* Value('i', 0) */
};

static int trabajador(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    struct compartido *c = *(struct compartido *const *)arg;
    mproc_barrier_wait(&c->salida, -1);
    for (int i = 0; i < INCREMENTOS; i++) {
        mproc_lock_acquire(&c->lock, -1); /* with lock: */
        c->valor += 1;                    /*     val.value += 1 */
        mproc_lock_release(&c->lock);
    }
    return 0;
}

int main(void)
{
    struct compartido *c = mproc_shared_calloc(sizeof *c);
    if (!c || mproc_lock_init(&c->lock, MPROC_SHARED) != 0 ||
        mproc_barrier_init(&c->salida, PROCESOS, MPROC_SHARED) != 0) {
        perror("memoria compartida");
        return 1;
    }
    mproc_process *hijos[PROCESOS];
    for (int i = 0; i < PROCESOS; i++) {
        int rc = mproc_process_create(&hijos[i], &(mproc_process_opts){
                                                     .fn = trabajador, .arg = &c,
                                                     .len = sizeof c });
        if (rc == 0)
            rc = mproc_process_start(hijos[i]);
        if (rc != 0) {
            fprintf(stderr, "proceso: %s\n", mproc_strerror(rc));
            return 1;
        }
    }
    for (int i = 0; i < PROCESOS; i++) {
        mproc_process_join(hijos[i], -1);
        mproc_process_destroy(hijos[i]);
    }

    int esperado = PROCESOS * INCREMENTOS;
    printf("valor final: %d (esperado %d)\n", c->valor, esperado);
    mproc_lock_counters s;
    mproc_lock_stats(&c->lock, &s);
    printf("adquisiciones: %llu, con contención: %llu\n",
           (unsigned long long)s.acquisitions, (unsigned long long)s.contended);
    return c->valor == esperado ? 0 : 1;
}
