/*
 * proceso_saludo.c -- seed 002, "Creación y Gestión de Procesos Básicos":
 *
 *     def saludo():
 *         print("Hola desde otro proceso")
 *
 *     p = Process(target=saludo)
 *     p.start()
 *     p.join()
 *
 * The child also shows its pid and its parent's (ppid), as the notes'
 * "Identificación y jerarquía" asks.
 */
#include <stdio.h>
#include <unistd.h>

#include <mproc.h>

static int saludo(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    printf("Hola desde otro proceso (pid %d, ppid %d)\n", (int)getpid(), (int)getppid());
    return 0;
}

int main(void)
{
    mproc_process *p;
    int rc = mproc_process_create(&p, &(mproc_process_opts){ .fn = saludo });
    if (rc == 0)
        rc = mproc_process_start(p);                     /* p.start() */
    if (rc != 0) {
        fprintf(stderr, "proceso: %s\n", mproc_strerror(rc));
        return 1;
    }
    printf("padre %d: lanzado %s (pid %d), vivo: %s\n", (int)getpid(), mproc_process_name(p),
           (int)mproc_process_pid(p), mproc_process_is_alive(p) ? "sí" : "ya terminó");
    mproc_process_join(p, -1);                           /* p.join() */
    int code = -1;
    mproc_process_exitcode(p, &code);
    printf("%s terminó con exitcode %d, vivo: %s\n", mproc_process_name(p), code,
           mproc_process_is_alive(p) ? "sí" : "no");
    mproc_process_destroy(p);
    return code == 0 ? 0 : 1;
}
