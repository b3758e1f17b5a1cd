/* nfsload.c: the load generator's command line: options, connections, one workload, its figures. */
#include "bench/nfsload/conn.h"
#include "bench/nfsload/stats.h"
#include "bench/nfsload/workloads.h"
#include "util/units.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fputs(
"usage: nfsload [options] WORKLOAD URL PATH...\n"
"Put one NFSv3 workload on a server with libnfs's async API, many requests\n"
"in flight, and print ops/s, MB/s (10^6 bytes) and p50/p99/p999 latency.\n"
"URL is nfs://HOST/EXPORT[?nfsport=N&mountport=M]; PATHs are relative to\n"
"the export root.\n"
"\n"
"workloads:\n"
"  seqread PATH...    --streams streams of --bsize READs (1 MiB), --depth\n"
"                     in flight each, over the files named or found under\n"
"                     the directories named (at least --min-size bytes)\n"
"  randread PATH...   --count READs of --bsize (use 4096) at random aligned\n"
"                     offsets, --depth in flight\n"
"  stat DIR           LOOKUP then GETATTR of every entry under DIR\n"
"  readdirplus DIR    full READDIRPLUS listings of DIR, --streams at once\n"
"  walk DIR           ls -lR: READDIRPLUS of DIR and everything below it\n"
"  smallfile DIR      LOOKUP, then READ to the end, of every file under DIR\n"
"  getattr DIR        GETATTR of every entry under DIR; with --fetch RUN,\n"
"                     only while RUN (uncached) is being fetched\n"
"  first PATH         time from the first LOOKUP of PATH to its first byte\n"
"                     (a file) or first listing page (a directory)\n"
"\n"
"options:\n"
"  --conns N          TCP connections (each mounts; default 1)\n"
"  --streams N        parallel streams (seqread, readdirplus; default 4)\n"
"  --depth N          requests in flight (per stream for seqread: 4;\n"
"                     otherwise in total: 32)\n"
"  --bsize BYTES      READ size (default 1M; suffixes K M G)\n"
"  --duration S       run for S seconds instead of one pass\n"
"  --rate N           stat, smallfile, getattr: start N request chains per\n"
"                     second in all, paced over the --depth slots; latency\n"
"                     counts from when a chain was due (default: back to\n"
"                     back, as fast as the server answers)\n"
"  --passes N         times over the work (default 1)\n"
"  --count N          randread requests (default 20000)\n"
"  --min-size BYTES   seqread/randread: skip smaller files\n"
"  --maxcount BYTES   READDIRPLUS maxcount (default 64K)\n"
"  --dircount BYTES   READDIRPLUS dircount (default 8K)\n"
"  --fetch PATH       getattr: the uncached run to fetch meanwhile\n"
"  --seed N           randread seed\n"
"  --warmup           run the workload once, untimed, first\n"
"  --timeout S        give up after S seconds (default 600)\n"
"  --json             print one JSON object instead of key value lines\n"
"  --help             this text\n"
"Output: counts, rates, lat_p50/p99/p999_ms, and lat_cdf_ms, the latency\n"
"distribution as PERCENTILE:MS pairs (0 = fastest request, 100 = slowest).\n"
"Exit status: 0 ok, 1 a request failed or timed out, 2 bad usage.\n",
        out);
}

/* Sizes and counts as everywhere in tarnfs ("64K", "1M"): util/units. */
static int parse_size(const char *s, uint64_t *out)
{
    return units_size(s, out) ? EINVAL : 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    uint64_t v;
    if (parse_size(s, &v) || v < (uint64_t)lo || v > (uint64_t)hi)
        return EINVAL;
    *out = (int)v;
    return 0;
}

enum { OPT_CONNS = 256, OPT_STREAMS, OPT_DEPTH, OPT_BSIZE, OPT_DURATION,
       OPT_PASSES, OPT_COUNT, OPT_MINSIZE, OPT_MAXCOUNT, OPT_DIRCOUNT,
       OPT_FETCH, OPT_SEED, OPT_WARMUP, OPT_TIMEOUT, OPT_JSON, OPT_HELP,
       OPT_RATE };

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "conns", required_argument, NULL, OPT_CONNS },
        { "streams", required_argument, NULL, OPT_STREAMS },
        { "depth", required_argument, NULL, OPT_DEPTH },
        { "bsize", required_argument, NULL, OPT_BSIZE },
        { "duration", required_argument, NULL, OPT_DURATION },
        { "rate", required_argument, NULL, OPT_RATE },
        { "passes", required_argument, NULL, OPT_PASSES },
        { "count", required_argument, NULL, OPT_COUNT },
        { "min-size", required_argument, NULL, OPT_MINSIZE },
        { "maxcount", required_argument, NULL, OPT_MAXCOUNT },
        { "dircount", required_argument, NULL, OPT_DIRCOUNT },
        { "fetch", required_argument, NULL, OPT_FETCH },
        { "seed", required_argument, NULL, OPT_SEED },
        { "warmup", no_argument, NULL, OPT_WARMUP },
        { "timeout", required_argument, NULL, OPT_TIMEOUT },
        { "json", no_argument, NULL, OPT_JSON },
        { "help", no_argument, NULL, OPT_HELP },
        { NULL, 0, NULL, 0 },
    };
    struct wl_opts o = {
        .streams = 4, .depth = 0, .bsize = 1 << 20, .passes = 1,
        .list = { .maxcount = 65536, .dircount = 8192, .depth = 8 },
    };
    int conns = 1, json = 0, warmup = 0, c, bad = 0;
    double timeout = 600;
    uint64_t v;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CONNS: bad |= parse_int(optarg, 1, 1024, &conns); break;
        case OPT_STREAMS: bad |= parse_int(optarg, 1, 4096, &o.streams); break;
        case OPT_DEPTH: bad |= parse_int(optarg, 1, 65536, &o.depth); break;
        case OPT_BSIZE:
            bad |= parse_size(optarg, &v) || !v || v > (64u << 20);
            o.bsize = (uint32_t)v;
            break;
        case OPT_DURATION: o.duration = strtod(optarg, NULL); break;
        case OPT_RATE: o.rate = strtod(optarg, NULL); bad |= o.rate < 0; break;
        case OPT_PASSES: bad |= parse_int(optarg, 1, 1 << 30, &o.passes); break;
        case OPT_COUNT: bad |= parse_size(optarg, &o.count); break;
        case OPT_MINSIZE: bad |= parse_size(optarg, &o.min_size); break;
        case OPT_MAXCOUNT:
            bad |= parse_size(optarg, &v) || v < 512 || v > (16u << 20);
            o.list.maxcount = (uint32_t)v;
            break;
        case OPT_DIRCOUNT:
            bad |= parse_size(optarg, &v) || v < 512 || v > (16u << 20);
            o.list.dircount = (uint32_t)v;
            break;
        case OPT_FETCH: o.fetch_path = optarg; break;
        case OPT_SEED: o.seed = (unsigned)strtoul(optarg, NULL, 10); break;
        case OPT_WARMUP: warmup = 1; break;
        case OPT_TIMEOUT: timeout = strtod(optarg, NULL); break;
        case OPT_JSON: json = 1; break;
        case OPT_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (bad || argc - optind < 3) {
        fprintf(stderr, "nfsload: %s\n",
                bad ? "bad option value" : "need WORKLOAD URL PATH...");
        usage(stderr);
        return 2;
    }
    const char *workload = argv[optind], *url = argv[optind + 1];
    int known = 0;
    for (const char *const *n = wl_names; *n; n++)
        known |= !strcmp(*n, workload);
    if (!known) {
        fprintf(stderr, "nfsload: unknown workload '%s'\n", workload);
        usage(stderr);
        return 2;
    }
    o.paths = argv + optind + 2;
    o.npaths = argc - optind - 2;
    if (!o.depth)
        o.depth = !strcmp(workload, "seqread") ? 4 : 32;
    if (!strcmp(workload, "walk"))
        o.list.depth = o.depth;
    if (timeout > 0)
        o.deadline_ns = now_ns() + (uint64_t)(timeout * 1e9);

    struct conn_pool pool;
    int rc = conn_open(&pool, url, conns);
    if (rc) {
        fprintf(stderr, "nfsload: %s: %s\n", url,
                pool.error[0] ? pool.error : strerror(rc));
        conn_close(&pool);
        return 1;
    }
    struct load_stats st = { 0 };
    if (warmup) {
        rc = wl_run(workload, &pool, &o, &st);
        stats_free(&st);
    }
    if (!rc)
        rc = wl_run(workload, &pool, &o, &st);
    if (rc) {
        fprintf(stderr, "nfsload: %s: %s\n", workload,
                pool.error[0] ? pool.error : strerror(rc));
    } else {
        stats_report(stdout, &st, workload, url, json);
        if (st.lat_oom)
            fprintf(stderr, "nfsload: some latency samples were dropped\n");
    }
    stats_free(&st);
    /* after a timeout or transport error, replies may still reference
     * workload memory: leave without tearing the connections down */
    if (rc == ETIMEDOUT || rc == EIO)
        return 1;
    conn_close(&pool);
    return rc ? 1 : 0;
}
