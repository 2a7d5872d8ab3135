/*
 * cow.c -- seed 001, "Copy-on-Write (CoW) en Profundidad":
 *
 *     fork() is nearly instant even with gigabytes of memory, because it
 *     does not copy it: parent and child share the same physical pages
 *     until one of them writes to a page; then the kernel copies that
 *     page only. "Load your large data in the parent before creating the
 *     children: they read the parent's memory for free."
 *
 * The parent fills a 64 MiB array, then starts two children with
 * mproc_process (fork): one only reads the array, the other writes all
 * of it. Each reads its own memory figures from /proc/self/smaps_rollup:
 * the reader's array is still shared with the parent; the writer's has
 * become private copies.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mproc.h>

#define MIB (1024 * 1024)
#define TAMANO (64 * MIB)

static unsigned char *arreglo;

struct memoria {
    long rss_kb, compartida_kb, privada_kb;
};

static int leer_memoria(struct memoria *m)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    if (!f)
        return -1;
    char linea[256];
    long v;
    *m = (struct memoria){ 0, 0, 0 };
    while (fgets(linea, sizeof linea, f)) {
        if (sscanf(linea, "Rss: %ld kB", &v) == 1)
            m->rss_kb = v;
        else if (sscanf(linea, "Shared_Clean: %ld kB", &v) == 1 ||
                 sscanf(linea, "Shared_Dirty: %ld kB", &v) == 1)
            m->compartida_kb += v;
        else if (sscanf(linea, "Private_Clean: %ld kB", &v) == 1 ||
                 sscanf(linea, "Private_Dirty: %ld kB", &v) == 1)
            m->privada_kb += v;
    }
    fclose(f);
    return 0;
}

static void mostrar(const char *quien, const struct memoria *m)
{
    printf("%-16s RSS %4ld MiB, compartida %4ld MiB, privada %4ld MiB\n", quien,
           m->rss_kb / 1024, m->compartida_kb / 1024, m->privada_kb / 1024);
}

/* The child that only reads: its sum proves it saw the parent's data. */
static int lector(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    unsigned long suma = 0;
    for (size_t i = 0; i < TAMANO; i += 4096)
        suma += arreglo[i];
    struct memoria m;
    if (leer_memoria(&m) != 0)
        return -1;
    mostrar("hijo lector", &m);
    int comparte = m.compartida_kb >= (TAMANO / 1024) * 9 / 10;
    printf("el lector leyó el arreglo (suma %lu) sin copiarlo: %s\n", suma,
           comparte ? "sí, sigue compartido" : "no");
    return comparte ? 0 : -1;
}

/* The child that writes every page: the kernel copies each one. */
static int escritor(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    for (size_t i = 0; i < TAMANO; i += 4096)
        arreglo[i] = 2;
    struct memoria m;
    if (leer_memoria(&m) != 0)
        return -1;
    mostrar("hijo escritor", &m);
    int copio = m.privada_kb >= (TAMANO / 1024) * 9 / 10;
    printf("el escritor modificó el arreglo: páginas copiadas: %s\n",
           copio ? "sí, ahora son privadas" : "no");
    return copio ? 0 : -1;
}

static int correr(mproc_task_fn fn)
{
    mproc_process *p;
    int code = -1;
    if (mproc_process_create(&p, &(mproc_process_opts){ .fn = fn }) != 0)
        return -1;
    if (mproc_process_start(p) == 0 && mproc_process_join(p, -1) == 0)
        mproc_process_exitcode(p, &code);
    mproc_process_destroy(p);
    return code;
}

int main(void)
{
    arreglo = malloc(TAMANO);
    if (!arreglo)
        return 1;
    memset(arreglo, 1, TAMANO); /* the parent loads its data first */
    struct memoria m;
    if (leer_memoria(&m) != 0) {
        perror("/proc/self/smaps_rollup");
        return 1;
    }
    mostrar("padre", &m);
    int a = correr(lector);
    int b = correr(escritor);
    printf("el padre sigue viendo sus datos: %s\n", arreglo[0] == 1 ? "sí (1)" : "no");
    return a == 0 && b == 0 && arreglo[0] == 1 ? 0 : 1;
}
