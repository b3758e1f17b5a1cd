/* conn.h: a pool of libnfs connections to one NFSv3 export, all driven by
 * one poll loop, plus the small helpers every workload shares (handles,
 * clocks, error bookkeeping).
 *
 * nfsload talks raw NFSv3 (rpc_nfs3_*_async) so that every request on the
 * wire is one the workload chose; libnfs's high-level calls would add
 * LOOKUPs, ACCESS calls and caching of their own. */
#ifndef TARNFS_BENCH_CONN_H
#define TARNFS_BENCH_CONN_H

#include <sys/time.h> /* libnfs.h needs struct timeval */
#include <stddef.h>
#include <stdint.h>
#include <nfsc/libnfs.h>
#include <nfsc/libnfs-raw.h>
#include <nfsc/libnfs-raw-nfs.h>

#define NFS3_HANDLE_MAX 64

/* An NFSv3 file handle, copied out of a reply so it outlives it. */
struct nfs_handle {
    uint32_t len;
    unsigned char data[NFS3_HANDLE_MAX];
};

struct conn_pool {
    int count;                  /* connections open */
    struct nfs_context **nfs;
    struct rpc_context **rpc;
    unsigned next;              /* round-robin cursor of conn_pick() */
    struct nfs_handle root;     /* handle of the mounted export */
    uint64_t readmax;           /* server's rtmax (FSINFO), via libnfs */
    int failed;                 /* a transport error ended the loop */
    void (*tick)(void *arg);    /* if set, run every loop pass (<= 1 ms) */
    void *tick_arg;
    char error[256];            /* first error seen, for the report */
};

/* Open count connections to url (nfs://host/export?nfsport=N&mountport=M),
 * mounting on each.  Returns 0, EINVAL (bad url or count), ENOMEM, or
 * ECONNREFUSED (mount failed; pool->error says why). */
int conn_open(struct conn_pool *pool, const char *url, int count);

/* Unmount and free every connection; safe on a half-opened pool. */
void conn_close(struct conn_pool *pool);

/* The next connection, round robin. */
struct rpc_context *conn_pick(struct conn_pool *pool);

/* Connection number i (modulo the pool size), to pin a stream to one. */
struct rpc_context *conn_get(struct conn_pool *pool, unsigned i);

/* Poll and service every connection until done(arg) returns non-zero or
 * deadline_ns (CLOCK_MONOTONIC, 0 = none) passes; pool->tick, if set, runs
 * after every pass, at least once a millisecond.  Returns 0 when done,
 * ETIMEDOUT at the deadline, EIO on a transport error (pool->error). */
int conn_run(struct conn_pool *pool, int (*done)(void *arg), void *arg,
             uint64_t deadline_ns);

/* Record the first error message of a run (later ones are dropped). */
void conn_note_error(struct conn_pool *pool, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Copy an on-the-wire handle; returns 0 or EINVAL if it is too long. */
int handle_copy(struct nfs_handle *dst, const nfs_fh3 *src);

/* A wire view of h, valid while h lives (the request copies it out). */
nfs_fh3 handle_wire(const struct nfs_handle *h);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

#endif
