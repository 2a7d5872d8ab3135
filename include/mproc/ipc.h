/*
 * mproc/ipc.h -- communication and shared state between processes
 * (Python's multiprocessing Queue, Pipe, Value, Array, shared_memory and
 * Manager dict/list).
 *
 * Every object here lives in shared memory of its own (a memfd mapping,
 * or a named segment for mproc_shm), so a handle created before fork()
 * is valid in the children at the same address, and the memory goes away
 * when the last process using it unmaps it or exits. Every object works
 * between threads of one process and between processes alike, and
 * survives a participant dying at any point: the most a dead process can
 * lose is the one message it was putting or getting.
 */
#ifndef MPROC_IPC_H
#define MPROC_IPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- queues: Queue, SimpleQueue, JoinableQueue ---------------------- */

/*
 * A FIFO queue of byte messages between any number of producer and
 * consumer threads and processes (Python's multiprocessing.Queue; the
 * default queue is also its SimpleQueue, and with MPROC_QUEUE_JOINABLE its
 * JoinableQueue). Messages are copied in by put and copied out by get.
 *
 * The queue and its ring buffer live in one shared mapping of their own:
 * create it before fork() and use the same handle in the children. There
 * is no feeder thread and no pipe: a put copies the message into the ring
 * and returns, so its errors are reported by put itself, never lost.
 * Blocked calls sleep on futexes and wake when the state they wait for
 * changes.
 *
 * Crash safety: a producer killed in the middle of a put loses at most
 * that message; a consumer killed in the middle of a get loses at most
 * that message (if it had not finished copying it, the next consumer gets
 * it). The queue stays consistent and no other caller waits more than
 * about 100 ms longer because of the death.
 *
 * Ordering: messages from one producer thread are got in the order it
 * put them; a get takes the oldest message in the queue.
 *
 * Every call is safe from any number of threads and processes at once.
 * Timeouts: -1 waits forever; 0 does not wait (the call fails with
 * -EAGAIN instead); a positive value waits at most that many ms
 * (-ETIMEDOUT); below -1 is -EINVAL.
 */
typedef struct mproc_queue mproc_queue;

/* mproc_queue_opts.flags: the queue counts unfinished tasks
 * (mproc_queue_task_done, mproc_queue_join). */
#define MPROC_QUEUE_JOINABLE 0x1u

/* Options of mproc_queue_create. Zero fields mean the default; more
 * fields may be added (zero stays the default). */
typedef struct mproc_queue_opts {
    /* Most messages queued at once (Python's maxsize); 0 = no limit
     * other than max_bytes. */
    size_t maxsize;
    /* Size of the ring: most bytes queued at once, counting an 8-byte
     * header per message and padding of each message to 8 bytes.
     * 0 = 1 MiB; at least 256 (smaller values are raised), at most
     * 1 GiB. Messages larger than half of it are streamed through it in
     * chunks while a consumer takes them out, so they may be larger than
     * the ring itself. */
    size_t max_bytes;
    /* Largest message accepted by put; 0 = 64 MiB. */
    size_t max_message;
    /* 0 or MPROC_QUEUE_JOINABLE. */
    unsigned flags;
} mproc_queue_opts;

/*
 * mproc_queue_create - create an empty queue in a shared mapping of its
 * own and store its handle in *out. opts may be NULL.
 * Errors: -EINVAL (out NULL, unknown flags, max_bytes over 1 GiB),
 * -ENOMEM, -EMFILE or another -errno from creating the mapping.
 */
MPROC_API int mproc_queue_create(mproc_queue **out, const mproc_queue_opts *opts);

/*
 * mproc_queue_destroy - unmap the queue from the calling process. Other
 * processes that share it keep using it; the memory is freed when the
 * last of them unmaps it or exits. No thread of the calling process may
 * use the handle any more (it is no longer mapped).
 * Errors: -EINVAL (NULL or not a queue).
 */
MPROC_API int mproc_queue_destroy(mproc_queue *q);

/*
 * mproc_queue_put - append a copy of the `len` bytes at `data` (data may
 * be NULL when len is 0), waiting at most timeout_ms for room: for a free
 * item slot (maxsize) and for ring space. A message larger than about
 * half of max_bytes is streamed while consumers take it out, so its put
 * waits for a consumer (with timeout 0 it fails with -EAGAIN as soon as
 * it would have to wait, which for a message larger than the ring is
 * always); a put that fails after part of such a message was streamed
 * withdraws it: no consumer ever gets part of a message.
 * Returns 0; -EAGAIN (timeout 0 and no room); -ETIMEDOUT; -EPIPE (the
 * queue is closed); -EMSGSIZE (len > max_message); -EINVAL (NULL queue,
 * data NULL with len > 0, timeout below -1).
 * Thread-safe and process-safe. Blocks.
 */
MPROC_API int mproc_queue_put(mproc_queue *q, const void *data, size_t len,
                              int64_t timeout_ms);

/* mproc_queue_put_nowait - mproc_queue_put with timeout 0: -EAGAIN when
 * the queue is full. */
MPROC_API int mproc_queue_put_nowait(mproc_queue *q, const void *data, size_t len);

/*
 * mproc_queue_put_many - put the n messages msgs[0..n) (iov_base,
 * iov_len) in order, as n calls of mproc_queue_put would, but taking the
 * producers' lock once for as many of them as the ring has room for and
 * publishing them together (at least every 16 KiB): for small messages it
 * is several times faster. timeout_ms bounds the whole call. Messages
 * larger than half of max_bytes are streamed one by one, as by put.
 * Every message's size is checked first: nothing is put when one is too
 * large (-EMSGSIZE) or a base is NULL with a length (-EINVAL).
 * Returns the number of messages put: n, or fewer when an error stopped
 * the call after some were put (the next call reports it: -EPIPE,
 * -ETIMEDOUT, -EAGAIN); or, when none was put, the error as
 * mproc_queue_put's (-EINVAL also for n > INT_MAX).
 * Crash safety: a producer killed in the middle of put_many loses at most
 * the messages of that call not yet published; those published are whole.
 * Thread-safe and process-safe. Blocks.
 */
MPROC_API int mproc_queue_put_many(mproc_queue *q, const struct iovec *msgs, size_t n,
                                   int64_t timeout_ms);

/*
 * mproc_queue_get_many - remove up to `max` of the oldest messages at
 * once, copying them one after the other into buf (cap bytes): on return
 * msgs[i].iov_base points at message i in buf and msgs[i].iov_len is its
 * length. Waits at most timeout_ms for the first message, then takes those
 * already queued that fit in what is left of buf, under one hold of the
 * consumers' lock and with one release of their ring space. A message
 * larger than half of max_bytes (streamed) is only ever got alone.
 * Returns the number of messages got (1..max); -EMSGSIZE when even the
 * oldest does not fit in buf (nothing is removed; msgs[0].iov_len says its
 * size); otherwise the errors of mproc_queue_get (-EINVAL also for msgs
 * NULL, max 0 or above INT_MAX).
 * Crash safety: a consumer killed in the middle of get_many loses nothing
 * if it had not yet released the messages it was copying, else exactly
 * the ones it had got. Thread-safe and process-safe. Blocks.
 */
MPROC_API int mproc_queue_get_many(mproc_queue *q, void *buf, size_t cap, struct iovec *msgs,
                                   size_t max, int64_t timeout_ms);

/*
 * mproc_queue_get - remove the oldest message and copy it into buf (cap
 * bytes), waiting at most timeout_ms for one; *len receives its length.
 * If it does not fit, nothing is removed: returns -EMSGSIZE with *len set
 * to the size needed (retry with a larger buffer, or use
 * mproc_queue_get_alloc). Once a get has begun taking a message that is
 * being streamed (larger than half of max_bytes), it finishes receiving
 * it even past its timeout: the producer is writing it at that moment,
 * and the get returns as soon as it has written it, given up or died.
 * Returns 0; -EAGAIN (timeout 0, queue empty); -ETIMEDOUT; -EPIPE (the
 * queue is closed and every message put before has been got);
 * -EMSGSIZE; -EINVAL (NULL queue or len, buf NULL with cap > 0, timeout
 * below -1). Thread-safe and process-safe. Blocks.
 */
MPROC_API int mproc_queue_get(mproc_queue *q, void *buf, size_t cap, size_t *len,
                              int64_t timeout_ms);

/* mproc_queue_get_nowait - mproc_queue_get with timeout 0: -EAGAIN when
 * the queue is empty (-EPIPE when it is also closed). */
MPROC_API int mproc_queue_get_nowait(mproc_queue *q, void *buf, size_t cap, size_t *len);

/*
 * mproc_queue_get_alloc - as mproc_queue_get, into a buffer allocated
 * with malloc (*data; at least 1 byte, also for an empty message), which
 * the caller frees with free(). On error *data is NULL.
 * Errors: as mproc_queue_get, plus -ENOMEM (the message stays queued);
 * never -EMSGSIZE.
 */
MPROC_API int mproc_queue_get_alloc(mproc_queue *q, void **data, size_t *len,
                                    int64_t timeout_ms);

/*
 * mproc_queue_qsize - the number of messages in the queue (>= 0), or
 * -EINVAL. A snapshot: other threads and processes may change it at once.
 */
MPROC_API int mproc_queue_qsize(const mproc_queue *q);

/* mproc_queue_empty - 1 if the queue holds no message, 0 if it holds
 * some, -EINVAL. A snapshot. */
MPROC_API int mproc_queue_empty(const mproc_queue *q);

/* mproc_queue_full - 1 if a put would have to wait even for an empty
 * message (maxsize messages queued, or the ring full), 0 if not, -EINVAL.
 * A larger message may have to wait when this says 0. A snapshot. */
MPROC_API int mproc_queue_full(const mproc_queue *q);

/*
 * mproc_queue_close - close the queue, for every process sharing it:
 * later puts fail with -EPIPE, as do puts blocked waiting for room (they
 * wake up); gets still return the messages already queued, then -EPIPE,
 * and gets blocked on an empty queue wake up with -EPIPE. A put that had
 * already begun copying its message when close was called may still
 * complete; once a get has returned -EPIPE, no message can arrive any
 * more. Closing again is a no-op. The queue stays mapped: destroy it
 * after. Returns 0 or -EINVAL. Thread-safe and process-safe; never blocks.
 */
MPROC_API int mproc_queue_close(mproc_queue *q);

/* mproc_queue_is_closed - 1 if mproc_queue_close was called (by any
 * process), 0 if not, -EINVAL. */
MPROC_API int mproc_queue_is_closed(const mproc_queue *q);

/*
 * mproc_queue_task_done - JoinableQueue: say that one message got from
 * the queue has been fully processed. Every put adds one unfinished task;
 * every task_done removes one.
 * Errors: -EOVERFLOW when there is no unfinished task (called more times
 * than messages were put: Python's ValueError; nothing changes), -EINVAL
 * (NULL, or the queue was not created with MPROC_QUEUE_JOINABLE).
 * Thread-safe and process-safe; never blocks.
 */
MPROC_API int mproc_queue_task_done(mproc_queue *q);

/*
 * mproc_queue_join - JoinableQueue: wait until every message put has
 * been marked done with mproc_queue_task_done. A message lost with a
 * consumer that died after taking it is never marked done: use a timeout
 * if consumers may die.
 * Returns 0, -ETIMEDOUT (also for timeout 0 with tasks unfinished),
 * -EINVAL (NULL, not joinable, timeout below -1). Blocks.
 */
MPROC_API int mproc_queue_join(mproc_queue *q, int64_t timeout_ms);

/* ---- pipes: Pipe and Connection -------------------------------------- */

/*
 * A connection is one end of a pipe carrying whole byte messages
 * (Python's multiprocessing.Pipe and Connection). Create the pair before
 * fork(); each process then uses its end and should close (or destroy)
 * the end it does not use, as in Python: the peer's end-of-file is seen
 * only when every process has closed that end.
 *
 * When the peer end is closed -- by mproc_conn_close, by exiting, or by
 * dying of any signal -- recv still returns the messages sent before,
 * then -EPIPE, and send fails with -EPIPE: nobody hangs on a dead peer.
 * A sender killed in the middle of a large message makes it vanish: the
 * receiver never gets part of a message.
 *
 * Threads of one process may send on one end at once (whole messages
 * never interleave) and receive on one end at once (each message goes to
 * one of them; they take turns). Two processes should not use the same
 * end at once: messages up to 64 KiB still arrive whole, larger ones may
 * be dropped.
 */
typedef struct mproc_conn mproc_conn;

/* Options of mproc_pipe_create. Zero fields mean the default; more
 * fields may be added. */
typedef struct mproc_pipe_opts {
    /* Largest message send accepts (and recv takes); 0 = 64 MiB. */
    size_t max_message;
} mproc_pipe_opts;

/*
 * mproc_pipe_create - create a connected pair of connections in *a and
 * *b. duplex: both ends send and receive. Not duplex (Python's
 * Pipe(duplex=False), which returns (reader, writer)): *a only receives,
 * *b only sends. opts may be NULL.
 * Errors: -EINVAL (a or b NULL), -ENOMEM, -EMFILE, -ENFILE.
 * Each end is freed with mproc_conn_destroy.
 */
MPROC_API int mproc_pipe_create(mproc_conn **a, mproc_conn **b, bool duplex,
                                const mproc_pipe_opts *opts);

/* mproc_pipe - mproc_pipe_create with default options. */
MPROC_API int mproc_pipe(mproc_conn **a, mproc_conn **b, bool duplex);

/*
 * mproc_conn_send - send a copy of the `len` bytes at `data` (NULL when
 * len is 0) as one message. Blocks while the pipe's buffer is full,
 * until the peer receives (there is no timeout, as in Python).
 * Errors: -EPIPE (the peer end is closed, or its process died),
 * -EMSGSIZE (len > max_message), -EBADF (this end was closed, or it is
 * the receive-only end), -EINVAL (NULL, data NULL with len > 0).
 */
MPROC_API int mproc_conn_send(mproc_conn *c, const void *data, size_t len);

/*
 * mproc_conn_recv - receive the next message into buf (cap bytes),
 * waiting at most timeout_ms for one; *len receives its length. If it
 * does not fit, it stays queued: -EMSGSIZE with *len set to the size
 * needed. Once the first part of a large message (over 64 KiB) has
 * arrived, recv waits for the rest regardless of the timeout: its sender
 * is writing it, and the wait ends when it has, or when it dies.
 * Returns 0; -EAGAIN (timeout 0, nothing queued); -ETIMEDOUT; -EPIPE
 * (the peer end is closed and every message it sent has been received);
 * -EMSGSIZE; -EBADF (this end was closed, or it is the send-only end);
 * -EINVAL (NULL c or len, buf NULL with cap > 0, timeout below -1).
 */
MPROC_API int mproc_conn_recv(mproc_conn *c, void *buf, size_t cap, size_t *len,
                              int64_t timeout_ms);

/*
 * mproc_conn_recv_alloc - as mproc_conn_recv, into a buffer allocated
 * with malloc (*data; at least 1 byte) that the caller frees. On error
 * *data is NULL. Errors as mproc_conn_recv plus -ENOMEM, never -EMSGSIZE.
 */
MPROC_API int mproc_conn_recv_alloc(mproc_conn *c, void **data, size_t *len,
                                    int64_t timeout_ms);

/*
 * mproc_conn_poll - wait at most timeout_ms until a message can be
 * received. Returns 1 (a message is queued), 0 (timed out), -EPIPE (no
 * message queued and the peer end is closed), -EBADF (closed here, or the
 * send-only end), -EINVAL.
 */
MPROC_API int mproc_conn_poll(mproc_conn *c, int64_t timeout_ms);

/*
 * mproc_conn_fileno - the connection's file descriptor, for poll(2) or
 * select(2) together with other descriptors (readable when a message or
 * end-of-file is queued). Owned by the connection: do not close it.
 * Returns the descriptor, -EBADF when closed, -EINVAL.
 */
MPROC_API int mproc_conn_fileno(const mproc_conn *c);

/*
 * mproc_conn_close - close this end, in this process (other processes'
 * copies of it stay open). Later calls on it return -EBADF, except
 * close (a no-op) and destroy. Not to be called while another thread of
 * this process is inside a call on the same end. Returns 0 or -EINVAL.
 */
MPROC_API int mproc_conn_close(mproc_conn *c);

/* mproc_conn_destroy - close this end (if still open) and free the handle
 * in this process. Returns 0 or -EINVAL. */
MPROC_API int mproc_conn_destroy(mproc_conn *c);

/* ---- shared values and arrays: Value, Array, RawValue, RawArray ------ */

/*
 * A value is one typed item in shared memory (Python's Value('i', 0)); an
 * array is `len` items of one type (Array('i', 5)). Both come with a
 * robust process-shared lock (get_lock()) unless created MPROC_RAW
 * (RawValue / RawArray).
 *
 * What is atomic without the lock: every single-item get, set, add and
 * cas on a number (i32, i64, u64, f64). get has acquire order, set has
 * release order, add and cas are acquire-release, so a value set last
 * publishes what the setter wrote before. They never take the lock, so
 * they may be called while holding it. The lock is for compound updates
 * (`with lock: v.value += 1` is lock, get, set, release -- or just add)
 * and for consistency across several items; the bulk and bytes calls
 * below take it themselves (unless the calling thread already holds it).
 *
 * Where they live: small objects in the process tree's shared arena
 * (mproc_shared_calloc), large ones (above 16 KiB) in a shared mapping of
 * their own. A handle is valid, at the same address, in every process
 * forked after the create call (and in their forks); processes forked
 * before it do not see it.
 *
 * Life cycle: destroy exactly once, in any one process, after every other
 * process and thread has stopped using the object; the others simply
 * stop using it (a process that exits needs no cleanup). Calls on a NULL
 * or destroyed handle return -EINVAL where detectable.
 *
 * Errors shared by the calls below: -EINVAL for a NULL or destroyed
 * handle, a NULL output pointer, or a call of the wrong type (get_f64 on
 * an i64 value); -ERANGE for an array index or range past the end.
 */

/* Item types. Python type codes: 'i' is MPROC_I32, 'q' MPROC_I64, 'Q'
 * MPROC_U64, 'd' MPROC_F64, 'c'/'B' MPROC_BYTES. */
typedef enum mproc_type {
    MPROC_I32 = 0, /* int32_t (the default, as Python's 'i') */
    MPROC_I64,     /* int64_t */
    MPROC_U64,     /* uint64_t */
    MPROC_F64,     /* double */
    MPROC_BYTES    /* value: a byte string up to `size`; array: bytes */
} mproc_type;

/* No lock: RawValue / RawArray. The atomic single-item calls still work;
 * the bytes and bulk calls copy without any protection. */
#define MPROC_RAW 0x1u

typedef struct mproc_value mproc_value;
typedef struct mproc_array mproc_array;

/* Options of mproc_value_create. Zero is the default for every field;
 * more fields may be added. */
typedef struct mproc_value_opts {
    mproc_type type; /* item type; default MPROC_I32 */
    size_t size;     /* MPROC_BYTES: capacity in bytes (required, > 0);
                      * other types: 0 */
    unsigned flags;  /* 0 or MPROC_RAW */
} mproc_value_opts;

/*
 * mproc_value_create - a new shared value, zero (or the empty byte
 * string), with its lock unless MPROC_RAW. opts NULL: a locked MPROC_I32.
 * *out is the handle, owned by the caller until mproc_value_destroy.
 * Errors: -EINVAL (out NULL, unknown type or flags, size 0 for
 * MPROC_BYTES or nonzero for a number), -ENOMEM, -EMFILE.
 * Thread-safe.
 */
MPROC_API int mproc_value_create(mproc_value **out, const mproc_value_opts *opts);

/*
 * mproc_value_destroy - free a value (see "Life cycle" above: once, after
 * everyone has stopped using it). NULL is a no-op returning 0.
 * Errors: -EBUSY when a live thread holds its lock (nothing is freed),
 * -EINVAL.
 */
MPROC_API int mproc_value_destroy(mproc_value *v);

/* mproc_value_type - the value's mproc_type, or -EINVAL. */
MPROC_API int mproc_value_type(const mproc_value *v);

/* mproc_value_size - bytes of storage: 4 or 8 for numbers, the capacity
 * for MPROC_BYTES; 0 for an invalid handle. */
MPROC_API size_t mproc_value_size(const mproc_value *v);

/*
 * mproc_value_lock - the value's lock (Python's get_lock()), a robust
 * MPROC_SHARED mproc_lock: use it with mproc_lock_acquire/release. When
 * a process dies holding it, the next acquirer gets -EOWNERDEAD, repairs
 * the value and calls mproc_lock_consistent. Owned by the value: do not
 * destroy it. NULL for a MPROC_RAW or invalid value.
 */
MPROC_API mproc_lock *mproc_value_lock(mproc_value *v);

/*
 * mproc_value_ptr - the address of the stored item (int32_t, int64_t,
 * uint64_t, double, or the bytes of a MPROC_BYTES value), 8-byte aligned,
 * for direct access under the lock. Valid until the value is destroyed.
 * NULL for an invalid handle.
 */
MPROC_API void *mproc_value_ptr(mproc_value *v);

/*
 * mproc_value_get_<T> / mproc_value_set_<T> - read the value into *out /
 * store x. Atomic, lock-free, never block. -EINVAL if the value is not of
 * type T.
 */
MPROC_API int mproc_value_get_i32(mproc_value *v, int32_t *out);
MPROC_API int mproc_value_get_i64(mproc_value *v, int64_t *out);
MPROC_API int mproc_value_get_u64(mproc_value *v, uint64_t *out);
MPROC_API int mproc_value_get_f64(mproc_value *v, double *out);
MPROC_API int mproc_value_set_i32(mproc_value *v, int32_t x);
MPROC_API int mproc_value_set_i64(mproc_value *v, int64_t x);
MPROC_API int mproc_value_set_u64(mproc_value *v, uint64_t x);
MPROC_API int mproc_value_set_f64(mproc_value *v, double x);

/*
 * mproc_value_add_<T> - add delta atomically (integers wrap around, two's
 * complement); the value before the addition goes to *old unless old is
 * NULL. Lock-free (f64 retries a compare-and-swap). Never blocks.
 * -EINVAL if the value is not of type T.
 */
MPROC_API int mproc_value_add_i32(mproc_value *v, int32_t delta, int32_t *old);
MPROC_API int mproc_value_add_i64(mproc_value *v, int64_t delta, int64_t *old);
MPROC_API int mproc_value_add_u64(mproc_value *v, uint64_t delta, uint64_t *old);
MPROC_API int mproc_value_add_f64(mproc_value *v, double delta, double *old);

/*
 * mproc_value_cas_<T> - compare and swap: if the value equals *expected,
 * store desired and return 0; otherwise store the current value in
 * *expected and return -EAGAIN. Lock-free, never blocks.
 * -EINVAL if the value is not of type T or expected is NULL.
 */
MPROC_API int mproc_value_cas_i32(mproc_value *v, int32_t *expected, int32_t desired);
MPROC_API int mproc_value_cas_i64(mproc_value *v, int64_t *expected, int64_t desired);
MPROC_API int mproc_value_cas_u64(mproc_value *v, uint64_t *expected, uint64_t desired);

/*
 * mproc_value_set_bytes - store `len` bytes (len <= the capacity; 0 makes
 * it empty) in a MPROC_BYTES value. data may be NULL only when len is 0.
 * mproc_value_get_bytes - copy the stored bytes into buf (capacity cap)
 * and their number into *len; buf may be NULL when cap is 0.
 * Both take the value's lock, unless the calling thread already holds it
 * or the value is MPROC_RAW (then a concurrent set can tear the copy).
 * If the lock's previous holder died, they copy nothing and return
 * -EOWNERDEAD (the bytes may be half-written; acquire the lock, repair,
 * call mproc_lock_consistent). Block while another thread holds the lock.
 * Errors: -EMSGSIZE (set: len above the capacity; get: cap below the
 * stored length, which is still reported in *len), -EINVAL.
 */
MPROC_API int mproc_value_set_bytes(mproc_value *v, const void *data, size_t len);
MPROC_API int mproc_value_get_bytes(mproc_value *v, void *buf, size_t cap, size_t *len);

/* Options of mproc_array_create. Zero is the default for every field
 * except len; more fields may be added. */
typedef struct mproc_array_opts {
    mproc_type type;  /* item type; default MPROC_I32. MPROC_BYTES: items
                       * are single bytes */
    size_t len;       /* number of items (required, > 0) */
    unsigned flags;   /* 0 or MPROC_RAW */
    const void *init; /* NULL (all zero), or `len` items to copy in */
} mproc_array_opts;

/*
 * mproc_array_create - a new shared array of opts->len items, zero or
 * copied from opts->init, with its lock unless MPROC_RAW.
 * *out is the handle, owned by the caller until mproc_array_destroy.
 * Errors: -EINVAL (out or opts NULL, len 0, unknown type or flags, a
 * size that overflows), -ENOMEM, -EMFILE. Thread-safe.
 */
MPROC_API int mproc_array_create(mproc_array **out, const mproc_array_opts *opts);

/* mproc_array_destroy - as mproc_value_destroy. */
MPROC_API int mproc_array_destroy(mproc_array *a);

/* mproc_array_type - the items' mproc_type, or -EINVAL. */
MPROC_API int mproc_array_type(const mproc_array *a);

/* mproc_array_len - the number of items; 0 for an invalid handle. */
MPROC_API size_t mproc_array_len(const mproc_array *a);

/* mproc_array_lock - as mproc_value_lock. */
MPROC_API mproc_lock *mproc_array_lock(mproc_array *a);

/* mproc_array_ptr - the first item (items are contiguous, 8-byte
 * aligned), for direct access under the lock; NULL for an invalid
 * handle. */
MPROC_API void *mproc_array_ptr(mproc_array *a);

/*
 * mproc_array_get_<T> / set / add / cas - the value calls above, on item
 * `index`. Atomic and lock-free per item. -ERANGE when index >= len;
 * -EINVAL when the array is not of type T.
 */
MPROC_API int mproc_array_get_i32(mproc_array *a, size_t index, int32_t *out);
MPROC_API int mproc_array_get_i64(mproc_array *a, size_t index, int64_t *out);
MPROC_API int mproc_array_get_u64(mproc_array *a, size_t index, uint64_t *out);
MPROC_API int mproc_array_get_f64(mproc_array *a, size_t index, double *out);
MPROC_API int mproc_array_set_i32(mproc_array *a, size_t index, int32_t x);
MPROC_API int mproc_array_set_i64(mproc_array *a, size_t index, int64_t x);
MPROC_API int mproc_array_set_u64(mproc_array *a, size_t index, uint64_t x);
MPROC_API int mproc_array_set_f64(mproc_array *a, size_t index, double x);
MPROC_API int mproc_array_add_i32(mproc_array *a, size_t index, int32_t delta, int32_t *old);
MPROC_API int mproc_array_add_i64(mproc_array *a, size_t index, int64_t delta, int64_t *old);
MPROC_API int mproc_array_add_u64(mproc_array *a, size_t index, uint64_t delta, uint64_t *old);
MPROC_API int mproc_array_add_f64(mproc_array *a, size_t index, double delta, double *old);
MPROC_API int mproc_array_cas_i32(mproc_array *a, size_t index, int32_t *expected,
                                  int32_t desired);
MPROC_API int mproc_array_cas_i64(mproc_array *a, size_t index, int64_t *expected,
                                  int64_t desired);
MPROC_API int mproc_array_cas_u64(mproc_array *a, size_t index, uint64_t *expected,
                                  uint64_t desired);

/*
 * mproc_array_read / mproc_array_write - copy `count` items starting at
 * item `start` out to dst / in from src (Python's arr[start:start+count]
 * and slice assignment), any type. Under the array's lock, as
 * mproc_value_get_bytes (same -EOWNERDEAD rule), so a read sees no
 * half-done write of other lock holders; each number is also copied
 * atomically. count 0 does nothing. Errors: -ERANGE (start + count past
 * the end), -EOWNERDEAD, -EINVAL (NULL dst/src with count > 0).
 */
MPROC_API int mproc_array_read(mproc_array *a, size_t start, void *dst, size_t count);
MPROC_API int mproc_array_write(mproc_array *a, size_t start, const void *src, size_t count);

/* ---- shared memory segments: shared_memory.SharedMemory -------------- */

/*
 * A segment is a block of memory shared between processes (Python's
 * multiprocessing.shared_memory.SharedMemory). Two kinds:
 *
 * Anonymous (opts.name NULL): a memfd. Processes forked afterwards share
 * it through the inherited handle; other processes can be given its
 * descriptor (mproc_shm_fd, mproc_shm_attach_fd). It disappears with the
 * last mapping and descriptor, so it cannot leak.
 *
 * Named: a file in /dev/shm (POSIX shm_open namespace) that any process
 * of the same user may attach to by name. A named segment is created
 * whole: it appears in /dev/shm already at its full size, so an attacher
 * never sees it half-made.
 *
 * Who keeps a named segment alive. Unless created with MPROC_SHM_KEEP, a
 * named segment belongs to the creating process tree and is unlinked when
 * that tree ends, also when its processes are killed with SIGKILL. The
 * tree is: the process that created its first such segment, and every
 * process forked (directly or not) from a member after that moment. The
 * first create starts a small cleanup process (the "tracker", see
 * src/ipc/shm.c) that holds one end of a socket whose other end every
 * member holds; when the last member is gone, the tracker unlinks every
 * segment the tree created and has not unlinked, and exits. It runs in a
 * session of its own with every signal blocked (Ctrl-C to the group does
 * not stop it), and is not a child of any member (nothing to reap).
 * Not members, so they do not keep the tree's segments alive: processes
 * forked before that first create, processes that only attach, and
 * processes that exec another program (the descriptor is close-on-exec)
 * or close all their descriptors. A segment unlinked by anyone is
 * forgotten; one replaced under the same name by somebody else is left
 * alone. With MPROC_SHM_KEEP nothing tracks the segment: it stays until
 * someone unlinks it (or the machine reboots), as with shm_open.
 *
 * A handle is private to the process that made it (a fork child gets its
 * own copy, mapped at the same address, which it may destroy on its own).
 * The calls on one handle are thread-safe except mproc_shm_destroy, which
 * must not race with anything else on that handle. Calls given a NULL
 * handle fail with -EINVAL (or return NULL / 0).
 */

/* Do not unlink the named segment when the creating tree ends. */
#define MPROC_SHM_KEEP 0x1u

/* Longest segment name, in bytes (the file name limit of /dev/shm). */
#define MPROC_SHM_NAME_MAX 255

typedef struct mproc_shm mproc_shm;

/* Options of mproc_shm_create. Zero is the default for every field except
 * size; more fields may be added. */
typedef struct mproc_shm_opts {
    const char *name; /* NULL: anonymous; else 1..MPROC_SHM_NAME_MAX bytes,
                       * no '/', not "." or ".." */
    size_t size;      /* bytes (required, > 0); the memory starts zeroed */
    unsigned flags;   /* 0 or MPROC_SHM_KEEP (named segments only) */
    unsigned mode;    /* named: permission bits, before the umask;
                       * default 0600 */
} mproc_shm_opts;

/*
 * mproc_shm_create - create a segment of opts->size zeroed bytes and map
 * it read-write. A named segment must not exist yet (as O_EXCL). The
 * first tracked named create of a process tree starts the tracker.
 * *out is the handle, owned by the caller until mproc_shm_destroy.
 * Errors: -EINVAL (out or opts NULL, size 0, bad name, unknown flags,
 * MPROC_SHM_KEEP without a name), -EEXIST (the name exists), -EACCES,
 * -ENOMEM, -EMFILE, -EAGAIN (the tracker could not be started), other
 * -errno. On error nothing is left behind. Thread-safe.
 */
MPROC_API int mproc_shm_create(mproc_shm **out, const mproc_shm_opts *opts);

/*
 * mproc_shm_attach - map the existing named segment `name`, whole and
 * read-write. Attaching does not make the caller a member of the
 * creator's tree (see above). *out is owned by the caller.
 * Errors: -EINVAL (NULL, bad name, empty segment), -ENOENT (no such
 * segment), -EACCES, -ENOMEM, -EMFILE. Thread-safe.
 */
MPROC_API int mproc_shm_attach(mproc_shm **out, const char *name);

/*
 * mproc_shm_attach_fd - map the segment behind descriptor fd (e.g. an
 * anonymous segment's memfd handed to an exec'd program). fd is not taken
 * over: the handle keeps a duplicate. The handle has no name.
 * Errors: -EINVAL (out NULL, an empty or non-mappable file), -EBADF,
 * -ENOMEM, -EMFILE. Thread-safe.
 */
MPROC_API int mproc_shm_attach_fd(mproc_shm **out, int fd);

/* mproc_shm_addr - the start of the mapping (page aligned); NULL for a
 * NULL handle. Valid until mproc_shm_destroy. */
MPROC_API void *mproc_shm_addr(const mproc_shm *s);

/* mproc_shm_size - the segment's size in bytes; 0 for a NULL handle. */
MPROC_API size_t mproc_shm_size(const mproc_shm *s);

/* mproc_shm_name - the segment's name (as given, owned by the handle);
 * NULL for an anonymous segment or a NULL handle. */
MPROC_API const char *mproc_shm_name(const mproc_shm *s);

/* mproc_shm_fd - the handle's descriptor for the segment (close-on-exec,
 * owned by the handle: dup it to pass it on), or -EINVAL. */
MPROC_API int mproc_shm_fd(const mproc_shm *s);

/*
 * mproc_shm_unlink - remove the segment's name from /dev/shm (Python's
 * unlink()): no new process can attach, while existing mappings, this
 * handle's included, stay valid. The tree's tracker forgets it. Only
 * this handle's segment is removed: if the name now belongs to another
 * segment (unlinked and created again), that one stays.
 * Errors: -EINVAL (NULL or anonymous), -ENOENT (already unlinked, or the
 * name belongs to another segment), -EACCES. Thread-safe.
 */
MPROC_API int mproc_shm_unlink(mproc_shm *s);

/*
 * mproc_shm_destroy - unmap the segment and close the handle's descriptor
 * in this process (Python's close()); never unlinks. NULL is a no-op.
 * Returns 0.
 */
MPROC_API int mproc_shm_destroy(mproc_shm *s);

/* ---- shared dict and list: Manager().dict(), Manager().list() --------- */

/*
 * A dict maps string keys to byte values; a list holds byte items in
 * order. Both are usable from many threads and processes at once with no
 * server process: the whole object -- a hash table or an index, and the
 * bytes themselves -- lives in one shared mapping, and every call takes
 * the object's robust process-shared lock for its duration (so calls
 * block while another one runs, briefly). Values are copied in and out.
 *
 * Where they live: a memfd mapping of opts.max_bytes bytes of address
 * space, inherited by processes forked after the create call (at the same
 * address). Memory is only used as the object fills: pages are backed
 * when first written. Space of deleted items is reused for new ones of a
 * similar size, never returned to the system; when the mapping is full,
 * calls that need room fail with -ENOSPC.
 *
 * A process killed in the middle of a call loses at most that call's
 * change (and its memory): every change becomes visible with one store,
 * and the next caller, told of the death by the lock, recounts and goes
 * on. No caller ever sees -EOWNERDEAD.
 *
 * Life cycle: as values (destroy exactly once, after everyone has stopped
 * using it). Calls on a NULL or destroyed handle return -EINVAL where
 * detectable.
 */

/* Longest dict key, in bytes, without its NUL. */
#define MPROC_DICT_KEY_MAX 1024

typedef struct mproc_dict mproc_dict;
typedef struct mproc_list mproc_list;

/* Options of mproc_dict_create and mproc_list_create. Zero is the default
 * for every field; more fields may be added. */
typedef struct mproc_dict_opts {
    size_t max_bytes; /* address space reserved, the most the object can
                       * hold with its bookkeeping; default 1 GiB, at
                       * least 64 KiB (smaller values are rounded up) */
} mproc_dict_opts;
typedef mproc_dict_opts mproc_list_opts;

/*
 * mproc_dict_create - an empty shared dict. opts may be NULL.
 * *out is owned by the caller until mproc_dict_destroy.
 * Errors: -EINVAL (out NULL), -ENOMEM, -EMFILE. Thread-safe.
 */
MPROC_API int mproc_dict_create(mproc_dict **out, const mproc_dict_opts *opts);

/*
 * mproc_dict_destroy - free the dict (once, after everyone has stopped
 * using it; other processes' mappings stay until they exit). NULL is a
 * no-op. Errors: -EBUSY (a call is running in this or another process;
 * nothing is freed), -EINVAL.
 */
MPROC_API int mproc_dict_destroy(mproc_dict *d);

/*
 * mproc_dict_set - d[key] = the `len` bytes at val (copied; val may be
 * NULL when len is 0), adding the key or replacing its value.
 * Errors: -EINVAL (NULL d or key, key longer than MPROC_DICT_KEY_MAX),
 * -ENOSPC (full: the dict is unchanged). Blocks while another call runs.
 */
MPROC_API int mproc_dict_set(mproc_dict *d, const char *key, const void *val, size_t len);

/*
 * mproc_dict_get - copy d[key] into buf (capacity cap; buf may be NULL
 * when cap is 0) and its length into *len.
 * Errors: -ENOENT (no such key), -EMSGSIZE (cap below the value's length,
 * which is still stored in *len; nothing copied), -EINVAL. Blocks while
 * another call runs.
 */
MPROC_API int mproc_dict_get(mproc_dict *d, const char *key, void *buf, size_t cap,
                             size_t *len);

/*
 * mproc_dict_delete - del d[key]. Errors: -ENOENT, -EINVAL. Blocks while
 * another call runs.
 */
MPROC_API int mproc_dict_delete(mproc_dict *d, const char *key);

/* mproc_dict_contains - 1 if key is in d, 0 if not, or -EINVAL. */
MPROC_API int mproc_dict_contains(mproc_dict *d, const char *key);

/* mproc_dict_len - the number of keys; 0 for an invalid handle. */
MPROC_API size_t mproc_dict_len(mproc_dict *d);

/* An iteration over a dict: set it to MPROC_DICT_ITER_INIT (all zero)
 * before the first mproc_dict_next. Private memory of the caller. */
typedef struct mproc_dict_iter {
    uint64_t _gen;
    uint64_t _pos;
} mproc_dict_iter;

#define MPROC_DICT_ITER_INIT { 0, 0 }

/*
 * mproc_dict_next - the next item of an iteration: its key, NUL ended,
 * into key (capacity keycap; MPROC_DICT_KEY_MAX + 1 always suffices),
 * its value into val (capacity valcap; val NULL and valcap 0 to skip
 * values) and the value's length into *vlen (vlen may be NULL when val is
 * NULL). Each item present during the whole iteration is returned once;
 * items added or deleted meanwhile may or may not be.
 * Returns 0 (an item), -ENOENT (no more items), -EAGAIN (the dict was
 * rehashed since the iteration began -- it grew -- so start again with a
 * fresh iterator), -EMSGSIZE (the key or the value does not fit; *vlen is
 * set and the iteration does not advance), -EINVAL.
 * Blocks while another call runs.
 */
MPROC_API int mproc_dict_next(mproc_dict *d, mproc_dict_iter *it, char *key, size_t keycap,
                              void *val, size_t valcap, size_t *vlen);

/* mproc_list_create - an empty shared list; as mproc_dict_create. */
MPROC_API int mproc_list_create(mproc_list **out, const mproc_list_opts *opts);

/* mproc_list_destroy - as mproc_dict_destroy. */
MPROC_API int mproc_list_destroy(mproc_list *l);

/*
 * mproc_list_append - add a copy of the `len` bytes at data at the end
 * (data may be NULL when len is 0). Errors: -ENOSPC (full; unchanged),
 * -EINVAL. Blocks while another call runs.
 */
MPROC_API int mproc_list_append(mproc_list *l, const void *data, size_t len);

/*
 * mproc_list_get - copy item `index` into buf (capacity cap) and its
 * length into *len. Errors: -ERANGE (index >= length), -EMSGSIZE (as
 * mproc_dict_get), -EINVAL. Blocks while another call runs.
 */
MPROC_API int mproc_list_get(mproc_list *l, size_t index, void *buf, size_t cap,
                             size_t *len);

/*
 * mproc_list_set - replace item `index` with a copy of `len` bytes.
 * Errors: -ERANGE, -ENOSPC (unchanged), -EINVAL. Blocks while another
 * call runs.
 */
MPROC_API int mproc_list_set(mproc_list *l, size_t index, const void *data, size_t len);

/*
 * mproc_list_pop - remove the last item, copying it into buf (capacity
 * cap) and its length into *len. Errors: -ENOENT (empty), -EMSGSIZE (it
 * does not fit: nothing removed, *len set), -EINVAL. Blocks while
 * another call runs.
 */
MPROC_API int mproc_list_pop(mproc_list *l, void *buf, size_t cap, size_t *len);

/* mproc_list_len - the number of items; 0 for an invalid handle. */
MPROC_API size_t mproc_list_len(mproc_list *l);

#ifdef __cplusplus
}
#endif
#endif /* MPROC_IPC_H */
