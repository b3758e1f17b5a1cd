/* metrics.c: per-thread call counters and the Prometheus /metrics endpoint (libmicrohttpd). */
#include "nfsd/metrics.h"
#include "nfsd/listcache.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nfsd/nfsd.h"
#include "util/log.h"

/* Counters are sharded: a thread takes a shard the first time it counts
 * (round robin), so with up to SHARDS workers none shares a cache line
 * with another and every add is an uncontended relaxed atomic. */
#define SHARDS      16
#define NFS_PROCS   22
#define MOUNT_PROCS 6

/* Latency bucket upper bounds, ns (the last bucket is +Inf). */
static const uint64_t bucket_ns[] = {
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
    2500000000u, 5000000000u, 10000000000u,
};
#define NBUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

/* Error statuses counted by name; any other goes to "other". */
static const struct { int code; const char *name; } nfs_statuses[] = {
    { 1, "NFS3ERR_PERM" }, { 2, "NFS3ERR_NOENT" }, { 5, "NFS3ERR_IO" },
    { 6, "NFS3ERR_NXIO" }, { 13, "NFS3ERR_ACCES" }, { 17, "NFS3ERR_EXIST" },
    { 18, "NFS3ERR_XDEV" }, { 19, "NFS3ERR_NODEV" }, { 20, "NFS3ERR_NOTDIR" },
    { 21, "NFS3ERR_ISDIR" }, { 22, "NFS3ERR_INVAL" }, { 27, "NFS3ERR_FBIG" },
    { 28, "NFS3ERR_NOSPC" }, { 30, "NFS3ERR_ROFS" }, { 31, "NFS3ERR_MLINK" },
    { 63, "NFS3ERR_NAMETOOLONG" }, { 66, "NFS3ERR_NOTEMPTY" }, { 69, "NFS3ERR_DQUOT" },
    { 70, "NFS3ERR_STALE" }, { 71, "NFS3ERR_REMOTE" }, { 10001, "NFS3ERR_BADHANDLE" },
    { 10002, "NFS3ERR_NOT_SYNC" }, { 10003, "NFS3ERR_BAD_COOKIE" },
    { 10004, "NFS3ERR_NOTSUPP" }, { 10005, "NFS3ERR_TOOSMALL" },
    { 10006, "NFS3ERR_SERVERFAULT" }, { 10007, "NFS3ERR_BADTYPE" },
    { 10008, "NFS3ERR_JUKEBOX" },
};
static const struct { int code; const char *name; } mount_statuses[] = {
    { 1, "MNT3ERR_PERM" }, { 2, "MNT3ERR_NOENT" }, { 5, "MNT3ERR_IO" },
    { 13, "MNT3ERR_ACCES" }, { 20, "MNT3ERR_NOTDIR" }, { 22, "MNT3ERR_INVAL" },
    { 63, "MNT3ERR_NAMETOOLONG" }, { 10004, "MNT3ERR_NOTSUPP" },
    { 10006, "MNT3ERR_SERVERFAULT" },
};
#define NSTATUS (sizeof nfs_statuses / sizeof nfs_statuses[0])

typedef atomic_uint_fast64_t ctr;

struct proc_ctr {
    ctr calls, sum_ns;
    ctr bucket[NBUCKETS + 1];
    ctr err[NSTATUS + 1];               /* by status index; last: other */
};

struct shard {
    _Alignas(64) struct proc_ctr nfs[NFS_PROCS];
    struct proc_ctr mount[MOUNT_PROCS];
    ctr read_bytes, written_bytes;
};

struct nfsd_metrics {
    struct shard *shards;               /* SHARDS of them */
    struct MHD_Daemon *httpd;
    int port;
    vfs *v;
    struct rpc_server *rs;
    struct listcache *lc;
};

static atomic_uint next_shard;
static _Thread_local int my_shard = -1;

static void add(ctr *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static uint64_t get(const ctr *c)
{
    return atomic_load_explicit((ctr *)c, memory_order_relaxed);
}

int metrics_new(struct nfsd_metrics **out)
{
    struct nfsd_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return ENOMEM;
    m->shards = aligned_alloc(64, SHARDS * sizeof *m->shards);
    if (!m->shards) {
        free(m);
        return ENOMEM;
    }
    memset(m->shards, 0, SHARDS * sizeof *m->shards);
    *out = m;
    return 0;
}

static size_t status_index(int prog, int status)
{
    if (prog == METRICS_NFS) {
        for (size_t i = 0; i < NSTATUS; i++)
            if (nfs_statuses[i].code == status)
                return i;
    } else {
        for (size_t i = 0; i < sizeof mount_statuses / sizeof mount_statuses[0]; i++)
            if (mount_statuses[i].code == status)
                return i;
    }
    return NSTATUS;
}

void metrics_call(struct nfsd_metrics *m, int prog, uint32_t proc, int status,
                  uint64_t ns, uint64_t read_bytes, uint64_t written_bytes)
{
    if (my_shard < 0)
        my_shard = (int)(atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) %
                         SHARDS);
    struct shard *sh = &m->shards[my_shard];
    struct proc_ctr *p;
    if (prog == METRICS_NFS && proc < NFS_PROCS)
        p = &sh->nfs[proc];
    else if (prog == METRICS_MOUNT && proc < MOUNT_PROCS)
        p = &sh->mount[proc];
    else
        return;
    add(&p->calls, 1);
    add(&p->sum_ns, ns);
    size_t b = 0;
    while (b < NBUCKETS && ns > bucket_ns[b])
        b++;
    add(&p->bucket[b], 1);
    if (status > 0)
        add(&p->err[status_index(prog, status)], 1);
    if (read_bytes)
        add(&sh->read_bytes, read_bytes);
    if (written_bytes)
        add(&sh->written_bytes, written_bytes);
}

/* ---- exposition ---- */

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void one(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    family(f, name, type, help);
    fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* A procedure's counters summed over the shards. */
struct proc_sum {
    uint64_t calls, sum_ns, bucket[NBUCKETS + 1], err[NSTATUS + 1];
};

static void sum_procs(struct nfsd_metrics *m, int prog, struct proc_sum *out, size_t n)
{
    memset(out, 0, n * sizeof *out);
    for (int s = 0; s < SHARDS; s++)
        for (size_t i = 0; i < n; i++) {
            const struct proc_ctr *p = prog == METRICS_NFS ? &m->shards[s].nfs[i]
                                                           : &m->shards[s].mount[i];
            out[i].calls += get(&p->calls);
            out[i].sum_ns += get(&p->sum_ns);
            for (size_t b = 0; b <= NBUCKETS; b++)
                out[i].bucket[b] += get(&p->bucket[b]);
            for (size_t e = 0; e <= NSTATUS; e++)
                out[i].err[e] += get(&p->err[e]);
        }
}

static void render_program(FILE *f, struct nfsd_metrics *m, int prog)
{
    const struct rpc_program *rp = prog == METRICS_NFS ? &nfs3_program : &mount3_program;
    const char *pn = prog == METRICS_NFS ? "nfs" : "mount";
    size_t n = prog == METRICS_NFS ? NFS_PROCS : MOUNT_PROCS;
    if (rp->nprocs < n)
        n = rp->nprocs;
    struct proc_sum sums[NFS_PROCS];
    sum_procs(m, prog, sums, n);
    char name[80];

    snprintf(name, sizeof name, "tarnfs_%s_calls_total", pn);
    family(f, name, "counter", prog == METRICS_NFS
           ? "NFSv3 calls answered, by procedure."
           : "MOUNT v3 calls answered, by procedure.");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s{proc=\"%s\"} %" PRIu64 "\n", name, rp->procs[i].name, sums[i].calls);

    snprintf(name, sizeof name, "tarnfs_%s_errors_total", pn);
    family(f, name, "counter", prog == METRICS_NFS
           ? "NFSv3 calls answered with an error, by procedure and nfsstat3."
           : "MOUNT v3 calls answered with an error, by procedure and mountstat3.");
    for (size_t i = 0; i < n; i++)
        for (size_t e = 0; e <= NSTATUS; e++) {
            if (!sums[i].err[e])
                continue;
            const char *st = "other";
            if (prog == METRICS_NFS && e < NSTATUS)
                st = nfs_statuses[e].name;
            else if (prog == METRICS_MOUNT &&
                     e < sizeof mount_statuses / sizeof mount_statuses[0])
                st = mount_statuses[e].name;
            fprintf(f, "%s{proc=\"%s\",status=\"%s\"} %" PRIu64 "\n", name,
                    rp->procs[i].name, st, sums[i].err[e]);
        }

    snprintf(name, sizeof name, "tarnfs_%s_call_duration_seconds", pn);
    family(f, name, "histogram", "Time from a call's start (or first parking) to its "
           "answer, by procedure.");
    for (size_t i = 0; i < n; i++) {
        uint64_t cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += sums[i].bucket[b];
            if (b < NBUCKETS)
                fprintf(f, "%s_bucket{proc=\"%s\",le=\"%g\"} %" PRIu64 "\n", name,
                        rp->procs[i].name, (double)bucket_ns[b] / 1e9, cum);
            else
                fprintf(f, "%s_bucket{proc=\"%s\",le=\"+Inf\"} %" PRIu64 "\n", name,
                        rp->procs[i].name, cum);
        }
        fprintf(f, "%s_sum{proc=\"%s\"} %.9f\n", name, rp->procs[i].name,
                (double)sums[i].sum_ns / 1e9);
        fprintf(f, "%s_count{proc=\"%s\"} %" PRIu64 "\n", name, rp->procs[i].name, cum);
    }
}

static uint64_t minus(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static void render_vfs(FILE *f, vfs *v)
{
    struct vfs_stats st;
    memset(&st, 0, sizeof st);
    vfs_get_stats(v, &st);
    one(f, "tarnfs_cache_bytes", "gauge", "Bytes of runs in the cache.", st.bytes_cached);
    one(f, "tarnfs_cache_limit_bytes", "gauge", "cache_limit (0: unlimited).",
        st.cache_limit_bytes);
    one(f, "tarnfs_cache_runs", "gauge", "Runs in the cache.", st.runs_cached);
    one(f, "tarnfs_cache_runs_open", "gauge",
        "Runs open (their metadata page cache in memory; open_runs bounds the idle ones).",
        st.runs_open);
    one(f, "tarnfs_cache_hits_total", "counter", "Run lookups served from the cache.",
        st.hits);
    one(f, "tarnfs_cache_misses_total", "counter", "Run lookups that needed a fetch.",
        st.misses);
    family(f, "tarnfs_cache_evictions_total", "counter",
           "Evictions: whole runs removed (run), runs whose file data was dropped (data).");
    fprintf(f, "tarnfs_cache_evictions_total{kind=\"run\"} %" PRIu64 "\n", st.evictions);
    fprintf(f, "tarnfs_cache_evictions_total{kind=\"data\"} %" PRIu64 "\n", st.data_evictions);
    one(f, "tarnfs_cache_dropped_bytes_total", "counter",
        "File data bytes eviction dropped.", st.bytes_dropped);
    family(f, "tarnfs_cache_fetches_total", "counter",
           "Backend fetches by kind (run: a whole tarball, index: a run index, range: "
           "file data of an index-first run) and outcome.");
    const struct { const char *kind; uint64_t all, failed; } k[] = {
        { "run", st.fetches, st.run_fetch_failures },
        { "index", st.index_fetches, st.index_fetch_failures },
        { "range", st.range_fetches, st.range_fetch_failures },
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        fprintf(f, "tarnfs_cache_fetches_total{kind=\"%s\",outcome=\"ok\"} %" PRIu64 "\n",
                k[i].kind, minus(k[i].all, k[i].failed));
        fprintf(f, "tarnfs_cache_fetches_total{kind=\"%s\",outcome=\"failed\"} %" PRIu64 "\n",
                k[i].kind, k[i].failed);
    }
    family(f, "tarnfs_cache_fetched_bytes_total", "counter",
           "Bytes fetched from the backend, by backend (s3, nas; none: no source).");
    fprintf(f, "tarnfs_cache_fetched_bytes_total{backend=\"%s\"} %" PRIu64 "\n",
            st.backend && *st.backend ? st.backend : "none", st.bytes_fetched);
    one(f, "tarnfs_writeback_dirty_runs", "gauge",
        "Runs with changes not yet written back (conflicted ones included).", st.dirty_runs);
    one(f, "tarnfs_writeback_conflicted_runs", "gauge",
        "Runs in conflict, waiting for `tarnfs cache resolve`.", st.conflicted_runs);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t now_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    double age = st.oldest_dirty_ms && now_ms > st.oldest_dirty_ms
                 ? (double)(now_ms - st.oldest_dirty_ms) / 1000 : 0;
    family(f, "tarnfs_writeback_oldest_dirty_age_seconds", "gauge",
           "Age of the oldest change not yet written back (0: none).");
    fprintf(f, "tarnfs_writeback_oldest_dirty_age_seconds %.3f\n", age);
    family(f, "tarnfs_writeback_uploads_total", "counter",
           "Write-backs by outcome (conflict: the object had changed; saved under a "
           "conflict key).");
    fprintf(f, "tarnfs_writeback_uploads_total{outcome=\"ok\"} %" PRIu64 "\n", st.uploads);
    fprintf(f, "tarnfs_writeback_uploads_total{outcome=\"failed\"} %" PRIu64 "\n",
            st.upload_failures);
    fprintf(f, "tarnfs_writeback_uploads_total{outcome=\"conflict\"} %" PRIu64 "\n",
            st.upload_conflicts);
}

static void render_rpc(FILE *f, struct rpc_server *rs)
{
    struct rpc_server_stats st;
    rpc_server_get_stats(rs, &st);
    family(f, "tarnfs_connections", "gauge",
           "TCP connections open, by state (busy: calls in progress or replies unsent; "
           "paused: not read, over rpc_memory_limit).  Counted once a second.");
    unsigned idle = st.conns_open - st.conns_busy - st.conns_paused;
    fprintf(f, "tarnfs_connections{state=\"idle\"} %u\n", idle);
    fprintf(f, "tarnfs_connections{state=\"busy\"} %u\n", st.conns_busy);
    fprintf(f, "tarnfs_connections{state=\"paused\"} %u\n", st.conns_paused);
    family(f, "tarnfs_listener_connections", "gauge",
           "TCP connections open on each transport event loop (listeners).");
    for (unsigned i = 0; i < st.loops; i++)
        fprintf(f, "tarnfs_listener_connections{listener=\"%u\"} %u\n", i, st.loop_conns[i]);
    one(f, "tarnfs_connections_accepted_total", "counter", "TCP connections accepted.",
        st.conns_accepted);
    one(f, "tarnfs_connections_refused_total", "counter",
        "TCP connections refused (max_connections, max_connections_per_host).",
        st.conns_refused);
    one(f, "tarnfs_parked_requests", "gauge",
        "Calls parked now, waiting for data being fetched (no thread held).", st.parked);
    one(f, "tarnfs_parked_requests_total", "counter", "Times a call was parked.", st.parks);
    one(f, "tarnfs_parked_expired_total", "counter",
        "Parked calls answered \"retry later\" (JUKEBOX) after park_timeout.",
        st.park_expired);
    one(f, "tarnfs_rpc_queued_requests", "gauge", "Calls waiting for a worker thread.",
        st.queued);
    one(f, "tarnfs_rpc_memory_bytes", "gauge",
        "Transport memory held: receive buffers, queued calls and replies.", st.memory);
}

void metrics_render(struct nfsd_metrics *m, vfs *v, struct rpc_server *rs, FILE *f)
{
    render_program(f, m, METRICS_NFS);
    render_program(f, m, METRICS_MOUNT);
    uint64_t rd = 0, wr = 0;
    for (int s = 0; s < SHARDS; s++) {
        rd += get(&m->shards[s].read_bytes);
        wr += get(&m->shards[s].written_bytes);
    }
    one(f, "tarnfs_nfs_read_bytes_total", "counter", "File bytes returned by NFS READ.", rd);
    one(f, "tarnfs_nfs_written_bytes_total", "counter", "File bytes taken by NFS WRITE.", wr);
    if (v)
        render_vfs(f, v);
    if (rs)
        render_rpc(f, rs);
    if (m->lc) {
        struct listcache_usage u;
        listcache_usage(m->lc, &u);
        one(f, "tarnfs_listing_cache_bytes", "gauge",
            "Bytes of encoded listings kept (listing_cache).", u.bytes);
        one(f, "tarnfs_listing_cache_entries", "gauge", "Listing pages kept.", u.entries);
        one(f, "tarnfs_listing_cache_hits_total", "counter",
            "READDIR(PLUS) pages answered from the listing cache.", u.hits);
        one(f, "tarnfs_listing_cache_misses_total", "counter",
            "Cacheable READDIR(PLUS) pages that had to be listed.", u.misses);
    }
}

void metrics_set_listcache(struct nfsd_metrics *m, struct listcache *lc)
{
    m->lc = lc;
}

/* ---- the HTTP endpoint ---- */

/* libmicrohttpd's limits: scrapes are small and rare. */
#define HTTP_MAX_CONNS      16
#define HTTP_MAX_PER_IP     4
#define HTTP_TIMEOUT_S      10
#define HTTP_CONN_MEMORY    (32 * 1024)

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *ctype,
                             char *body, size_t len, bool must_free)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (must_free)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    struct nfsd_metrics *m = cls;
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(url, "/metrics")) {
        static char nf[] = "not found: tarnfsd serves /metrics only\n";
        return reply(conn, MHD_HTTP_NOT_FOUND, text, nf, sizeof nf - 1, false);
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD)) {
        static char na[] = "method not allowed: GET or HEAD\n";
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, text, na, sizeof na - 1, false);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return MHD_NO;
    metrics_render(m, m->v, m->rs, f);
    if (fclose(f)) {
        free(buf);
        return MHD_NO;
    }
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf, len,
                 true);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = 0;
    log_warn("metrics: %s", msg);
}

int metrics_serve(struct nfsd_metrics *m, const char *listen, vfs *v, struct rpc_server *rs)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (nfsd_parse_sockaddr(listen, &ss, &sl)) {
        log_error("metrics_listen '%s': want IPV4:PORT or [IPV6]:PORT", listen);
        return EINVAL;
    }
    m->v = v;
    m->rs = rs;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    errno = 0;
    m->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, m,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_MAX_CONNS,
        MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)HTTP_MAX_PER_IP,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
        MHD_OPTION_END);
    if (!m->httpd) {
        int err = errno ? errno : EADDRINUSE;
        log_error("metrics: cannot listen on %s: %s", listen, strerror(err));
        return err;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = di ? di->port : 0;
    return 0;
}

int metrics_port(const struct nfsd_metrics *m)
{
    return m && m->httpd ? m->port : 0;
}

void metrics_stop(struct nfsd_metrics *m)
{
    if (m && m->httpd) {
        MHD_stop_daemon(m->httpd);
        m->httpd = NULL;
        m->port = 0;
    }
}

void metrics_free(struct nfsd_metrics *m)
{
    if (!m)
        return;
    metrics_stop(m);
    free(m->shards);
    free(m);
}
