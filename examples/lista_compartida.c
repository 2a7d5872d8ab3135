/*
 * lista_compartida.c -- seed 004, "IPC avanzado / Manager":
 *
 *     m = Manager()
 *     lista_compartida = m.list()
 *
 * Four processes append their greetings to one shared list, then the
 * parent prints it. mproc's list needs no manager process: the list lives
 * in shared memory with a lock of its own. (The processes are made with
 * fork(2) here; mproc's Process API comes with the processes layer.)
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

#define PROCESOS 4

static int trabajador(int i, mproc_list *lista)
{
    char texto[64];
    for (int k = 0; k < 2; k++) {
        snprintf(texto, sizeof texto, "hola %d del proceso %d", k, i);
        if (mproc_list_append(lista, texto, strlen(texto)) != 0) /* lista.append(...) */
            return 1;
    }
    return 0;
}

int main(void)
{
    mproc_list *lista_compartida;
    int rc = mproc_list_create(&lista_compartida, NULL); /* m.list() */
    if (rc != 0) {
        fprintf(stderr, "lista compartida: %s\n", mproc_strerror(rc));
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
            _exit(trabajador(i, lista_compartida));
    }
    int fallos = 0;
    for (int i = 0; i < PROCESOS; i++) {
        int st;
        if (waitpid(hijos[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fallos++;
    }
    size_t n = mproc_list_len(lista_compartida);
    printf("elementos: %zu\n", n);
    for (size_t i = 0; i < n; i++) {
        char texto[64];
        size_t largo;
        if (mproc_list_get(lista_compartida, i, texto, sizeof texto, &largo) == 0)
            printf("  %.*s\n", (int)largo, texto);
    }
    mproc_list_destroy(lista_compartida);
    return fallos == 0 && n == 2 * PROCESOS ? 0 : 1;
}
