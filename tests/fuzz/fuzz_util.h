/* fuzz_util.h: helpers shared by the fuzz targets (tests/fuzz/fuzz_*.c):
 * scratch directories removed at exit, an in-memory tarball, and the
 * real-server fixture the RPC target dispatches into. */
#ifndef TARNFS_TESTS_FUZZ_UTIL_H
#define TARNFS_TESTS_FUZZ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvstore/kvfs.h"

/* libFuzzer's entry points (the replay driver calls them too). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A new directory under $FUZZ_TMPDIR, else /dev/shm (a tmpfs: ingest
 * fsyncs), else $TMPDIR or /tmp, named tarnfs-fuzz-WHAT-XXXXXX,
 * removed with everything in it at exit.  Aborts on failure (a fuzz
 * target cannot run without it). */
const char *fuzz_scratch_dir(const char *what);

/* Bytes in memory read as a kv_read_fn stream. */
struct fuzz_mem { const uint8_t *p; size_t len, off; };
ssize_t fuzz_mem_read(void *arg, void *buf, size_t cap);

/* A small tarball (malloc'd, *len bytes) of one top directory "fz" with a
 * file, a 70 KB file in a sub-directory, a symlink, a hard link, a FIFO
 * and an empty directory.  Aborts on failure. */
uint8_t *fuzz_make_tar(size_t *len);

/* Ingest the tar bytes p[0..len) into cache dir as run name.  Aborts on
 * failure. */
void fuzz_ingest_run(const char *dir, const char *name, const uint8_t *p, size_t len);

/* The RPC fixture: a real struct nfsd (exports, DRC, fixed handle key)
 * over a real writable vfs on a cache made at first use holding runs "fz"
 * and "ns/r2" (fuzz_make_tar's tarball).  Exports: "/" rw for every
 * client (no_root_squash, insecure) and "/fz/sub" ro for 127.0.0.2.
 * Aborts on failure. */
struct nfsd;
struct nfsd *fuzz_rpc_server(void);

/* The fixture's fixed handle key: handles in the seed corpus stay valid. */
extern const uint8_t fuzz_rpc_key[32];

#endif
