/*
 * os/error.c -- names and texts for result codes.
 */
#include <errno.h>
#include <string.h>

#include "mproc/os.h"

struct own_error {
    int code;
    const char *name;
    const char *text;
};

static const struct own_error own_errors[] = {
    { MPROC_ECANCELLED, "MPROC_ECANCELLED", "task cancelled" },
    { MPROC_EWORKERDIED, "MPROC_EWORKERDIED", "worker died while running the task" },
    { MPROC_ETASKTIMEOUT, "MPROC_ETASKTIMEOUT", "task ran past its deadline" },
    { MPROC_EBROKEN, "MPROC_EBROKEN", "executor is broken" },
    { MPROC_ESHUTDOWN, "MPROC_ESHUTDOWN", "executor is shut down" },
    { MPROC_EMEMLIMIT, "MPROC_EMEMLIMIT", "worker exceeded its memory limit" },
    { MPROC_ETHREADS, "MPROC_ETHREADS", "fork refused: the process is running threads" },
    { MPROC_ENOSYMBOL, "MPROC_ENOSYMBOL", "task function not found in the spawned process" },
};

static const struct own_error *find_own(int code)
{
    for (size_t i = 0; i < sizeof own_errors / sizeof own_errors[0]; i++)
        if (own_errors[i].code == code)
            return &own_errors[i];
    return NULL;
}

/* errno values are below 4096 on Linux; a larger magnitude that is not
 * one of ours is unknown. */
static int as_errno(int code)
{
    if (code > MPROC_EBASE && code < 0)
        return -code;
    if (code > 0 && code < 4096)
        return code;
    return 0;
}

const char *mproc_strerror(int code)
{
    if (code == 0)
        return "success";
    const struct own_error *e = find_own(code);
    if (e)
        return e->text;
    int err = as_errno(code);
    if (err == 0)
        return "unknown error";
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    /* Static, thread-safe, no locale or buffer. */
    const char *t = strerrordesc_np(err);
    return t ? t : "unknown error";
#else
    return strerror(err);
#endif
}

const char *mproc_errname(int code)
{
    if (code == 0)
        return "OK";
    const struct own_error *e = find_own(code);
    if (e)
        return e->name;
    int err = as_errno(code);
    if (err == 0)
        return "UNKNOWN";
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *n = strerrorname_np(err);
    return n ? n : "UNKNOWN";
#else
    switch (err) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOMEM: return "ENOMEM";
    case EAGAIN: return "EAGAIN";
    case EBUSY: return "EBUSY";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EDEADLK: return "EDEADLK";
    case EPIPE: return "EPIPE";
    case EOVERFLOW: return "EOVERFLOW";
    case EOWNERDEAD: return "EOWNERDEAD";
    case EMSGSIZE: return "EMSGSIZE";
    default: return "UNKNOWN";
    }
#endif
}
