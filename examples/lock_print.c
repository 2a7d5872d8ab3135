/*
 * lock_print.c -- seed 003, "SINCRONIZACIÓN BÁSICA CON LOCK": `with lock`
 * guarantees that only one process at a time uses print.
 *
 * Five processes each write a line in three separate pieces. Under a
 * shared mproc_lock the pieces of one line are never split by another
 * process's output. (The processes are made with fork(2) here; mproc's
 * Process API comes with the processes layer.)
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#define PROCESOS 5

static void escribir(const char *s)
{
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void f(mproc_lock *lock, int i)
{
    char linea[64];
    mproc_lock_acquire(lock, -1); /* with lock: */
    snprintf(linea, sizeof linea, "%d\n", i);
    escribir("hola ");            /* three writes that another process */
    escribir("mundo ");           /* could split without the lock */
    escribir(linea);
    mproc_lock_release(lock);
}

int main(void)
{
    mproc_lock *lock = mproc_shared_calloc(sizeof *lock);
    if (!lock || mproc_lock_init(lock, MPROC_SHARED) != 0) {
        perror("lock compartido");
        return 1;
    }
    pid_t hijos[PROCESOS];
    for (int i = 0; i < PROCESOS; i++) {
        hijos[i] = fork();
        if (hijos[i] < 0) {
            perror("fork");
            return 1;
        }
        if (hijos[i] == 0) {
            f(lock, i);
            _exit(0);
        }
    }
    for (int i = 0; i < PROCESOS; i++)
        waitpid(hijos[i], NULL, 0);
    return 0;
}
