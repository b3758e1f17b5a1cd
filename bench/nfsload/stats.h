/* stats.h: what a workload counts while it runs (operations, bytes,
 * entries, files, per-request latencies) and how nfsload reports it. */
#ifndef TARNFS_BENCH_STATS_H
#define TARNFS_BENCH_STATS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct load_stats {
    uint64_t ops;               /* NFS requests completed in the timed part */
    uint64_t bytes;             /* file bytes read */
    uint64_t entries;           /* directory entries listed */
    uint64_t files;             /* whole files read (smallfile) */
    uint64_t errors;            /* requests that failed */
    uint64_t start_ns, end_ns;  /* the timed part */
    uint64_t *lat_ns;           /* one latency per recorded request */
    size_t lat_count, lat_cap;
    int lat_oom;                /* a sample was dropped for lack of memory */
    double extra_seconds;       /* workload-specific time (fetch, first) */
    const char *extra_name;     /* its report key, or NULL */
};

/* Record one request's latency (t0 to now). */
void stats_latency(struct load_stats *st, uint64_t t0_ns, uint64_t t1_ns);

/* Latency percentile pct (0-100) in milliseconds; sorts the samples.
 * 0 when nothing was recorded. */
double stats_percentile_ms(struct load_stats *st, double pct);

/* Print st as "key value" lines, or as one JSON object when json != 0. */
void stats_report(FILE *out, struct load_stats *st, const char *workload,
                  const char *url, int json);

/* Free the samples. */
void stats_free(struct load_stats *st);

#endif
