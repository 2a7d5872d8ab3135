/*
 * cola_productor.c -- seed 004, "Comunicación entre procesos: Queue":
 *
 *     def productor(q):
 *         q.put("dato")
 *
 *     def consumidor(q):
 *         print(q.get())
 *
 *     q = Queue()
 *     Process(target=productor, args=(q,)).start()
 *     Process(target=consumidor, args=(q,)).start()
 *
 * The same with mproc: the queue lives in shared memory, so the handle
 * (a pointer) is passed to both children as their argument. The consumer
 * blocks in get until the producer has put. Then a bigger round: three
 * producers and two consumers, every message received exactly once.
 */
#include <stdio.h>
#include <string.h>

#include <mproc.h>

#define PRODUCTORES 3
#define CONSUMIDORES 2
#define MENSAJES 1000 /* per producer */

static mproc_queue *cola_de(const void *arg)
{
    mproc_queue *q;
    memcpy(&q, arg, sizeof q);
    return q;
}

static int productor(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    return mproc_queue_put(cola_de(arg), "dato", 5, -1); /* q.put("dato") */
}

static int consumidor(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    char buf[64];
    size_t n;
    int rc = mproc_queue_get(cola_de(arg), buf, sizeof buf, &n, -1); /* q.get() */
    if (rc == 0)
        printf("%s\n", buf); /* print(...) */
    return rc;
}

/* The bigger round: each producer puts MENSAJES numbered messages... */
struct ronda {
    mproc_queue *q;
    int id;
};

static int productor_n(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    const struct ronda *r = arg;
    for (int i = 0; i < MENSAJES; i++) {
        int m = r->id * MENSAJES + i;
        int rc = mproc_queue_put(r->q, &m, sizeof m, -1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ...and each consumer gets until it sees -1, counting into a shared
 * array of flags: each message must be seen once. */
static unsigned char *vistos;

static int consumidor_n(const void *arg, size_t len, mproc_ctx *ctx)
{
    (void)len;
    (void)ctx;
    const struct ronda *r = arg;
    for (;;) {
        int m;
        size_t n;
        int rc = mproc_queue_get(r->q, &m, sizeof m, &n, -1);
        if (rc != 0)
            return rc;
        if (m < 0)
            return 0;
        __atomic_fetch_add(&vistos[m], 1, __ATOMIC_RELAXED);
    }
}

static int lanzar(mproc_process **p, mproc_task_fn fn, const void *arg, size_t len)
{
    int rc = mproc_process_create(p, &(mproc_process_opts){ .fn = fn, .arg = arg, .len = len });
    if (rc == 0)
        rc = mproc_process_start(*p);
    if (rc != 0)
        fprintf(stderr, "proceso: %s\n", mproc_strerror(rc));
    return rc;
}

int main(void)
{
    mproc_queue *q;
    if (mproc_queue_create(&q, NULL) != 0) /* q = Queue() */
        return 1;
    mproc_process *prod, *cons;
    if (lanzar(&prod, productor, &q, sizeof q) || lanzar(&cons, consumidor, &q, sizeof q))
        return 1;
    mproc_process_join(prod, -1);
    mproc_process_join(cons, -1);
    mproc_process_destroy(prod);
    mproc_process_destroy(cons);

    vistos = mproc_shared_calloc(PRODUCTORES * MENSAJES);
    if (!vistos)
        return 1;
    mproc_process *ps[PRODUCTORES], *cs[CONSUMIDORES];
    struct ronda r[PRODUCTORES];
    for (int i = 0; i < CONSUMIDORES; i++)
        if (lanzar(&cs[i], consumidor_n, &(struct ronda){ q, 0 }, sizeof(struct ronda)))
            return 1;
    for (int i = 0; i < PRODUCTORES; i++) {
        r[i] = (struct ronda){ q, i };
        if (lanzar(&ps[i], productor_n, &r[i], sizeof r[i]))
            return 1;
    }
    for (int i = 0; i < PRODUCTORES; i++) {
        mproc_process_join(ps[i], -1);
        mproc_process_destroy(ps[i]);
    }
    int fin = -1; /* one end mark per consumer */
    for (int i = 0; i < CONSUMIDORES; i++)
        mproc_queue_put(q, &fin, sizeof fin, -1);
    for (int i = 0; i < CONSUMIDORES; i++) {
        mproc_process_join(cs[i], -1);
        mproc_process_destroy(cs[i]);
    }
    int una_vez = 0;
    for (int m = 0; m < PRODUCTORES * MENSAJES; m++)
        una_vez += vistos[m] == 1;
    printf("%d productores, %d consumidores: %d de %d mensajes recibidos exactamente una vez\n",
           PRODUCTORES, CONSUMIDORES, una_vez, PRODUCTORES * MENSAJES);
    mproc_queue_destroy(q);
    return una_vez == PRODUCTORES * MENSAJES ? 0 : 1;
}
