/*
 * bench/bench_ipc_boost.cpp -- Boost.Interprocess message_queue's side of
 * bench_ipc, compiled only when CMake finds a C++ compiler and the Boost
 * headers (Boost.Interprocess is header-only). The parent creates the
 * queue by name, each child of a transfer opens it, and the parent
 * removes the name when the transfer is over. No exception leaves this
 * file: each call returns 0 or a negative errno-style code.
 */
#include <cerrno>
#include <cstddef>
#include <new>

#include <boost/interprocess/ipc/message_queue.hpp>

namespace bip = boost::interprocess;

extern "C" {
int bench_boost_create(const char *name, size_t max_msgs, size_t msg_size);
void *bench_boost_open(const char *name);
int bench_boost_send(void *h, const void *p, size_t n);
int bench_boost_recv(void *h, void *buf, size_t cap, size_t *len);
void bench_boost_close(void *h);
void bench_boost_remove(const char *name);
}

/* Creates the queue (replacing a stale one of the same name) and unmaps it
 * again: the children open it by name. */
int bench_boost_create(const char *name, size_t max_msgs, size_t msg_size)
{
    try {
        bip::message_queue::remove(name);
        bip::message_queue q(bip::create_only, name, max_msgs, msg_size);
        return 0;
    } catch (const std::bad_alloc &) {
        return -ENOMEM;
    } catch (...) {
        return -EIO;
    }
}

/* The queue opened in the calling process, or NULL. */
void *bench_boost_open(const char *name)
{
    try {
        return new bip::message_queue(bip::open_only, name);
    } catch (...) {
        return nullptr;
    }
}

int bench_boost_send(void *h, const void *p, size_t n)
{
    try {
        static_cast<bip::message_queue *>(h)->send(p, n, 0);
        return 0;
    } catch (...) {
        return -EIO;
    }
}

int bench_boost_recv(void *h, void *buf, size_t cap, size_t *len)
{
    try {
        bip::message_queue::size_type got = 0;
        unsigned prio = 0;
        static_cast<bip::message_queue *>(h)->receive(buf, cap, got, prio);
        *len = got;
        return 0;
    } catch (...) {
        return -EIO;
    }
}

void bench_boost_close(void *h)
{
    delete static_cast<bip::message_queue *>(h);
}

void bench_boost_remove(const char *name)
{
    bip::message_queue::remove(name);
}
