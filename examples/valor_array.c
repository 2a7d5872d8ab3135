/*
 * valor_array.c -- seed 004, "Memoria compartida" and "Protección con
 * Lock":
 *
 *     val = Value('i', 0)
 *     arreglo = Array('i', [0]*5)
 *     with val.get_lock():
 *         val.value += 1
 *
 * Five processes each increment one shared integer 10,000 times under
 * the value's own lock (Python's get_lock()), and each writes the square
 * of its number into its slot of a shared array of five integers. The
 * value and the array are made before fork(), so every child sees them
 * at the same address. (The processes are made with fork(2) here;
 * mproc's Process API comes with the processes layer.)
 */
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#define PROCESOS 5
#define INCREMENTOS 10000

static int trabajador(int i, mproc_value *val, mproc_array *arreglo)
{
    mproc_lock *lock = mproc_value_lock(val);
    for (int k = 0; k < INCREMENTOS; k++) {
        int32_t v;
        if (mproc_lock_acquire(lock, -1) != 0) /* with val.get_lock(): */
            return 1;
        mproc_value_get_i32(val, &v);          /*     val.value += 1 */
        mproc_value_set_i32(val, v + 1);
        mproc_lock_release(lock);
    }
    return mproc_array_set_i32(arreglo, (size_t)i, i * i) != 0; /* arreglo[i] = i*i */
}

int main(void)
{
    mproc_value *val;
    mproc_array *arreglo;
    int32_t ceros[5] = { 0 };
    int rc = mproc_value_create(&val, &(mproc_value_opts){ .type = MPROC_I32 });
    if (rc == 0)
        rc = mproc_array_create(&arreglo, &(mproc_array_opts){ .type = MPROC_I32, .len = 5,
                                                               .init = ceros });
    if (rc != 0) {
        fprintf(stderr, "memoria compartida: %s\n", mproc_strerror(rc));
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
        if (hijos[i] == 0)
            _exit(trabajador(i, val, arreglo));
    }
    int fallos = 0;
    for (int i = 0; i < PROCESOS; i++) {
        int st;
        if (waitpid(hijos[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fallos++;
    }

    int32_t v, a[5];
    mproc_value_get_i32(val, &v);
    mproc_array_read(arreglo, 0, a, 5); /* arreglo[:] */
    printf("valor final: %d (esperado %d)\n", v, PROCESOS * INCREMENTOS);
    printf("arreglo: [%d, %d, %d, %d, %d]\n", a[0], a[1], a[2], a[3], a[4]);
    mproc_array_destroy(arreglo);
    mproc_value_destroy(val);
    return fallos == 0 && v == PROCESOS * INCREMENTOS ? 0 : 1;
}
