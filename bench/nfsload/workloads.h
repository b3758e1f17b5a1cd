/* workloads.h: the load patterns nfsload can put on an NFSv3 server.
 * Each keeps many requests in flight on a conn_pool and fills a
 * load_stats for its timed part; finding files and handles first (the
 * set-up) is never timed, except in "first", where it is the point. */
#ifndef TARNFS_BENCH_WORKLOADS_H
#define TARNFS_BENCH_WORKLOADS_H

#include "bench/nfsload/conn.h"
#include "bench/nfsload/stats.h"
#include "bench/nfsload/tree.h"

struct wl_opts {
    char **paths;               /* paths relative to the export root */
    int npaths;
    int streams;                /* seqread, readdirplus: parallel streams */
    int depth;                  /* requests in flight (per stream for
                                   seqread; in total otherwise) */
    uint32_t bsize;             /* READ size */
    double duration;            /* seconds; 0 = one pass over the work */
    double rate;                /* stat/smallfile/getattr: request chains
                                   started per second in all, evenly
                                   paced over the depth slots (0 = each
                                   slot back to back) */
    uint64_t count;             /* randread: requests (0 = 20000) */
    int passes;                 /* times over the work list */
    uint64_t min_size;          /* seqread/randread: skip smaller files */
    struct list_opts list;      /* READDIRPLUS sizes and walk depth */
    const char *fetch_path;     /* getattr: run to fetch meanwhile */
    unsigned seed;              /* randread offsets */
    uint64_t deadline_ns;       /* give up at this time (0 = never) */
};

/* Run workload name (seqread, randread, stat, readdirplus, walk,
 * smallfile, getattr, first) against pool with options o, filling st.
 * Returns 0, EINVAL (unknown workload or unusable paths), ENOENT (a path
 * is missing), EIO (requests failed; pool->error), ETIMEDOUT or ENOMEM. */
int wl_run(const char *name, struct conn_pool *pool, const struct wl_opts *o,
           struct load_stats *st);

/* The workload names, for --help. */
extern const char *const wl_names[];

#endif
