/*
 * tuberia_hola.c -- seeds 002 and 004, "Pipes":
 *
 *     parent_conn, child_conn = Pipe()
 *     parent_conn.send("hola")
 *     print(child_conn.recv())
 *
 * First exactly that, in one process; then across processes: the child
 * answers on its end, and when it ends (its end closes) the parent's
 * recv reports -EPIPE instead of waiting forever.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <mproc.h>

static mproc_conn *hijo_conn;

static int hijo(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)arg;
    (void)len;
    (void)ctx;
    char buf[64];
    size_t n;
    int rc = mproc_conn_recv(hijo_conn, buf, sizeof buf, &n, -1);
    if (rc != 0)
        return rc;
    char respuesta[128];
    snprintf(respuesta, sizeof respuesta, "el hijo recibió \"%s\" y responde: adiós", buf);
    return mproc_conn_send(hijo_conn, respuesta, strlen(respuesta) + 1);
}

int main(void)
{
    mproc_conn *parent_conn, *child_conn;
    if (mproc_pipe(&parent_conn, &child_conn, true) != 0) /* Pipe() */
        return 1;
    mproc_conn_send(parent_conn, "hola", 5);              /* parent_conn.send("hola") */
    char buf[128];
    size_t n;
    if (mproc_conn_recv(child_conn, buf, sizeof buf, &n, -1) != 0)
        return 1;
    printf("%s\n", buf);                                   /* print(child_conn.recv()) */

    /* Across processes: the child keeps child_conn, the parent
     * parent_conn. */
    hijo_conn = child_conn;
    mproc_process *p;
    if (mproc_process_create(&p, &(mproc_process_opts){ .fn = hijo }) != 0 ||
        mproc_process_start(p) != 0)
        return 1;
    mproc_conn_close(child_conn); /* the parent's copy of the child's end */
    mproc_conn_send(parent_conn, "hola", 5);
    if (mproc_conn_recv(parent_conn, buf, sizeof buf, &n, -1) != 0)
        return 1;
    printf("%s\n", buf);
    mproc_process_join(p, -1);
    int rc = mproc_conn_recv(parent_conn, buf, sizeof buf, &n, 5000);
    printf("el hijo terminó; recv ahora devuelve %s\n", mproc_errname(rc));
    mproc_process_destroy(p);
    mproc_conn_destroy(parent_conn);
    mproc_conn_destroy(child_conn);
    return rc == -EPIPE ? 0 : 1;
}
