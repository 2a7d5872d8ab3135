/*
 * zombi.c -- seed 001, "Creando Zombis":
 *
 *     pid = os.fork()
 *     if pid > 0:
 *         time.sleep(60)      # the parent never calls wait()
 *     else:
 *         os._exit(0)         # the child dies at once
 *
 * A child that has ended stays in the process table, state Z
 * (<defunct>), until its parent reads its exit status. This program
 * shows the zombie in /proc, then the fix (waitpid reaps it and it is
 * gone), then the same child started with mproc_process, which never
 * leaves one behind: join reaps it.
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mproc.h>

/* The state letter of process pid in /proc (R, S, Z, ...), or 0 if it
 * does not exist any more. */
static char estado(pid_t pid)
{
    char ruta[64], linea[512];
    snprintf(ruta, sizeof ruta, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(ruta, "r");
    if (!f)
        return 0;
    char e = 0;
    if (fgets(linea, sizeof linea, f)) {
        char *p = strrchr(linea, ')'); /* the name may contain spaces */
        if (p && p[1] == ' ')
            e = p[2];
    }
    fclose(f);
    return e;
}

static int muere(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    return 0;
}

int main(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0)
        _exit(0); /* the child dies at once */
    /* The parent does not wait: the child turns into a zombie. */
    char e;
    while ((e = estado(pid)) != 'Z')
        mproc_sleep_ms(1);
    printf("padre %d: el hijo %d terminó pero nadie leyó su estado: estado %c (zombi)\n",
           (int)getpid(), (int)pid, e);
    int st;
    waitpid(pid, &st, 0); /* the fix: read its exit status */
    printf("tras waitpid: el hijo %d %s\n", (int)pid,
           estado(pid) == 0 ? "ya no existe" : "sigue en la tabla");

    mproc_process *p;
    if (mproc_process_create(&p, &(mproc_process_opts){ .fn = muere }) != 0 ||
        mproc_process_start(p) != 0)
        return 1;
    pid_t hijo = mproc_process_pid(p);
    mproc_process_join(p, -1); /* waits and reaps */
    printf("mproc_process: el hijo %d terminó y join lo recogió: %s\n", (int)hijo,
           estado(hijo) == 0 ? "ya no existe" : "sigue en la tabla");
    mproc_process_destroy(p);
    return estado(pid) == 0 && estado(hijo) == 0 ? 0 : 1;
}
