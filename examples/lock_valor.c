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
 * share with their parent. (The processes are made with fork(2) here;
 * mproc's Process API comes with the processes layer.)
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#define PROCESOS 4
#define INCREMENTOS 10000

struct compartido {
    mproc_lock lock;
    mproc_barrier salida; /* the processes start counting together */
    int valor;            /* Value('i', 0) */
};

static void trabajador(struct compartido *c)
{
    mproc_barrier_wait(&c->salida, -1);
    for (int i = 0; i < INCREMENTOS; i++) {
        mproc_lock_acquire(&c->lock, -1); /* with lock: */
        c->valor += 1;                    /*     val.value += 1 */
        mproc_lock_release(&c->lock);
    }
}

int main(void)
{
    struct compartido *c = mproc_shared_calloc(sizeof *c);
    if (!c || mproc_lock_init(&c->lock, MPROC_SHARED) != 0 ||
        mproc_barrier_init(&c->salida, PROCESOS, MPROC_SHARED) != 0) {
        perror("memoria compartida");
        return 1;
    }
    pid_t hijos[PROCESOS];
    for (int i = 0; i < PROCESOS; i++) {
        fflush(stdout);
        hijos[i] = fork();
        if (hijos[i] < 0) {
            perror("fork");
            return 1;
        }
        if (hijos[i] == 0) {
            trabajador(c);
            _exit(0);
        }
    }
    for (int i = 0; i < PROCESOS; i++)
        waitpid(hijos[i], NULL, 0);

    int esperado = PROCESOS * INCREMENTOS;
    printf("valor final: %d (esperado %d)\n", c->valor, esperado);
    mproc_lock_counters s;
    mproc_lock_stats(&c->lock, &s);
    printf("adquisiciones: %llu, con contención: %llu\n",
           (unsigned long long)s.acquisitions, (unsigned long long)s.contended);
    return c->valor == esperado ? 0 : 1;
}
