/*
 * workers/fnref.h -- function addresses that cross into a child process
 * (internal).
 *
 * A child made by fork or forkserver runs this program's image at the
 * same addresses, so a function travels as its address. A spawned child
 * runs the program afresh: the same objects (the program and the
 * libraries it was linked with), each loaded at another address. There a
 * function is named by a reference: (object, offset from the object's
 * load address). That needs no symbol name, so static functions, hidden
 * ones in libmproc and functions of a program linked without -rdynamic
 * all work.
 *
 * The objects. The first time a process encodes a reference (or asks for
 * its table) it takes a snapshot of the objects loaded in it -- name,
 * load address, GNU build-id -- and keeps it for its lifetime. A
 * reference is ((snapshot index + 1) << 48 | offset). Every spawned child
 * is sent the whole snapshot (mproc__fnref_table / _adopt) and matches it
 * against its own objects by name: the program itself has the empty name
 * in both, a library the path the loader found it at, which is the same
 * for the same program and environment. An object the child lacks (a
 * library the parent loaded with dlopen before the snapshot), or whose
 * build-id differs (rebuilt on disk since the parent started), makes its
 * references fail there, naming the object. An object loaded after the
 * snapshot can only have come from dlopen, which a fresh program has not
 * run: encoding an address in it fails in the parent already.
 *
 * Encoding looks up the object containing the address in the live link
 * map (dl_iterate_phdr), then remembers the answer in a small cache keyed
 * by address, so a task function submitted again costs a hash lookup
 * under a mutex. A cached address whose object was unloaded (dlclose)
 * keeps its old reference: it named a dlopen'ed object, which a spawned
 * child does not have, so it fails there as it should (naming the old
 * object).
 */
#ifndef MPROC_WORKERS_FNREF_H
#define MPROC_WORKERS_FNREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Enough for the reasons fnref writes (they name an object's path,
 * truncated if need be). */
#define MPROC__FNREF_WHY 256

/*
 * Turn the code address addr into a 64-bit word for a child process:
 * with ref false, the address itself (fork and forkserver children);
 * with ref true, a reference that a spawned child of this process
 * decodes. Returns 0, or MPROC_ENOSYMBOL with a reason in why[0..n) (why
 * may be NULL): addr is in no loaded object's code, or in an object
 * loaded after this process's snapshot (dlopen); -ENOMEM (why empty).
 * why is left alone on success. Thread-safe.
 */
int mproc__fnref_encode(const void *addr, bool ref, uint64_t *word, char *why, size_t n);

/*
 * The reverse, in the child: *addr for word, where ref says what
 * mproc__fnref_encode was told. A reference needs the parent's table
 * (mproc__fnref_adopt). Returns 0, or MPROC_ENOSYMBOL with a reason in
 * why[0..n) (why may be NULL): no table, a word that names no object of
 * the table, an object not loaded here or a different build of it, an
 * offset outside its code. Thread-safe once the table is adopted.
 */
int mproc__fnref_decode(uint64_t word, bool ref, void **addr, char *why, size_t n);

/*
 * The table a spawned child of this process needs to decode references:
 * *buf (owned by fnref, unchanged for the life of the process) and its
 * *len bytes. Takes the snapshot if there is none yet. Returns 0 or
 * -ENOMEM. Thread-safe.
 */
int mproc__fnref_table(const void **buf, size_t *len);

/* The largest table mproc__fnref_adopt accepts. */
#define MPROC__FNREF_TABLE_MAX ((size_t)1 << 20)

/*
 * In a spawned child, before any decode: take the parent's table
 * (buf[0..len), copied) and match it against the objects loaded here.
 * Returns 0, -EPROTO (malformed), -ENOMEM. Call once, single-threaded
 * (a spawned child's start-up).
 */
int mproc__fnref_adopt(const void *buf, size_t len);

#endif /* MPROC_WORKERS_FNREF_H */
