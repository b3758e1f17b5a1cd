/* tarnfsd.c: the tarnfsd program: options and config, daemon life cycle
 * (pidfile, signals, rpcbind registration) around the NFS/MOUNT server. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <rpc/pmap_clnt.h>
#include <rpc/rpc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "nfsd/config.h"
#include "nfsd/listcache.h"
#include "nfsd/nfsd.h"
#include "nfsd/nlm.h"
#include "nfsd/nlm_cb.h"
#include "nfsd/rpc_server.h"
#include "util/clock.h"
#include "util/conf.h"
#include "util/log.h"
#include "util/safefile.h"
#include "vfs/vfs.h"

#define DEFAULT_CONFIG  CONF_DEFAULT_PATH
#define DEFAULT_PIDFILE "/run/tarnfsd.pid"
/* The largest legal MOUNT call: a path of at most MNTPATHLEN (1024) bytes
 * and AUTH_SYS credential and verifier (at most 400 bytes each). */
#define MOUNT_MAX_RECORD 8192

static void usage(FILE *f)
{
    fprintf(f,
"usage: tarnfsd [options]\n"
"       tarnfsd --check-config [FILE]\n"
"Serve a tarnfs cache (and, with --source, a bucket or NAS directory of\n"
"run tarballs) over NFSv3 and MOUNT v3.\n"
"\n"
"  -f, --foreground        stay in the foreground and log to stderr\n"
"      --cache DIR         cache directory (required here or in the config)\n"
"      --source SRC        tarball source: /nas/dir or s3://bucket[/prefix]\n"
"      --s3-endpoint URL   S3 endpoint (default: AWS conventions)\n"
"      --config FILE       config file (default " DEFAULT_CONFIG " if present)\n"
"      --rw                allow writes (the default export becomes rw)\n"
"      --listen ADDR       listen address (default: all)\n"
"      --nfs-port N        NFS port, TCP and UDP (default 2049; 0 = any)\n"
"      --mount-port N      MOUNT port, TCP and UDP (default 20048; 0 = any)\n"
"      --no-rpcbind        do not register with rpcbind\n"
"      --no-udp            serve TCP only (no UDP socket, no UDP registration)\n"
"      --threads N         worker threads (default 4 x cores)\n"
"      --pidfile FILE      pidfile when daemonized (default " DEFAULT_PIDFILE ")\n"
"      --port-file FILE    write \"NFS_PORT MOUNT_PORT\" there once serving\n"
"      --check-config [FILE]  check FILE (default: --config's, else\n"
"                          " DEFAULT_CONFIG "), the cache and the source,\n"
"                          then exit: 0 OK, 1 problems (one line each)\n"
"  -v, --verbose           log debug messages\n"
"  -h, --help              this text\n"
"\n"
"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP re-reads the exports.\n"
"See tarnfsd(8) and tarnfs.conf(5).\n");
}

struct flags {
    bool foreground, rw, no_rpcbind, no_udp, verbose, check_config;
    const char *check_file;         /* --check-config's FILE, or NULL */
    const char *cache, *source, *s3_endpoint, *config, *listen, *pidfile, *port_file;
    int nfs_port, mount_port;       /* -1 = not given */
    unsigned threads;
};

static int parse_int_flag(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        fprintf(stderr, "tarnfsd: bad value '%s' for --%s (want %ld..%ld)\n", v, name, lo, hi);
        return EINVAL;
    }
    *out = n;
    return 0;
}

static int parse_flags(int argc, char **argv, struct flags *fl)
{
    enum { O_CACHE = 256, O_SOURCE, O_S3, O_CONFIG, O_RW, O_LISTEN, O_NFSPORT,
           O_MOUNTPORT, O_NORPCBIND, O_NOUDP, O_THREADS, O_PIDFILE, O_PORTFILE, O_CHECK };
    static const struct option opts[] = {
        { "foreground", no_argument, NULL, 'f' },
        { "cache", required_argument, NULL, O_CACHE },
        { "source", required_argument, NULL, O_SOURCE },
        { "s3-endpoint", required_argument, NULL, O_S3 },
        { "config", required_argument, NULL, O_CONFIG },
        { "rw", no_argument, NULL, O_RW },
        { "listen", required_argument, NULL, O_LISTEN },
        { "nfs-port", required_argument, NULL, O_NFSPORT },
        { "mount-port", required_argument, NULL, O_MOUNTPORT },
        { "no-rpcbind", no_argument, NULL, O_NORPCBIND },
        { "no-udp", no_argument, NULL, O_NOUDP },
        { "threads", required_argument, NULL, O_THREADS },
        { "pidfile", required_argument, NULL, O_PIDFILE },
        { "port-file", required_argument, NULL, O_PORTFILE },
        { "check-config", optional_argument, NULL, O_CHECK },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    memset(fl, 0, sizeof *fl);
    fl->nfs_port = fl->mount_port = -1;
    int ch;
    long n;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "fvh", opts, NULL)) != -1) {
        switch (ch) {
        case 'f': fl->foreground = true; break;
        case 'v': fl->verbose = true; break;
        case 'h': usage(stdout); exit(0);
        case O_CACHE: fl->cache = optarg; break;
        case O_SOURCE: fl->source = optarg; break;
        case O_S3: fl->s3_endpoint = optarg; break;
        case O_CONFIG: fl->config = optarg; break;
        case O_RW: fl->rw = true; break;
        case O_LISTEN: fl->listen = optarg; break;
        case O_NORPCBIND: fl->no_rpcbind = true; break;
        case O_NOUDP: fl->no_udp = true; break;
        case O_PIDFILE: fl->pidfile = optarg; break;
        case O_PORTFILE: fl->port_file = optarg; break;
        case O_CHECK: fl->check_config = true; fl->check_file = optarg; break;
        case O_NFSPORT:
            if (parse_int_flag("nfs-port", optarg, 0, 65535, &n)) return EINVAL;
            fl->nfs_port = (int)n;
            break;
        case O_MOUNTPORT:
            if (parse_int_flag("mount-port", optarg, 0, 65535, &n)) return EINVAL;
            fl->mount_port = (int)n;
            break;
        case O_THREADS:
            if (parse_int_flag("threads", optarg, 1, 1024, &n)) return EINVAL;
            fl->threads = (unsigned)n;
            break;
        default:
            if (optopt)
                fprintf(stderr, "tarnfsd: option -%c: unknown or missing its value\n", optopt);
            else
                fprintf(stderr, "tarnfsd: unknown option '%s'\n", argv[optind - 1]);
            fprintf(stderr, "Try 'tarnfsd --help'.\n");
            return EINVAL;
        }
    }
    if (fl->check_config && !fl->check_file && optind == argc - 1)
        fl->check_file = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "tarnfsd: unexpected argument '%s'\nTry 'tarnfsd --help'.\n",
                argv[optind]);
        return EINVAL;
    }
    return 0;
}

/* The flags that override settings, applied on top of the config file.
 * Errors: ENOMEM. */
static int apply_flags(const struct flags *fl, struct nfsd_config *cfg)
{
    static const struct { const char *key; size_t flag; } strings[] = {
        { "cache", offsetof(struct flags, cache) },
        { "source", offsetof(struct flags, source) },
        { "s3_endpoint", offsetof(struct flags, s3_endpoint) },
        { "listen", offsetof(struct flags, listen) },
        { "pidfile", offsetof(struct flags, pidfile) },
    };
    if (fl->cache) cfg->line.cache = 0;
    if (fl->source) cfg->line.source = 0;
    if (fl->listen) cfg->line.listen = 0;
    if (fl->nfs_port >= 0) cfg->line.nfs_port = 0;
    if (fl->mount_port >= 0) cfg->line.mount_port = 0;
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        const char *v;
        char why[256];
        memcpy(&v, (const char *)fl + strings[i].flag, sizeof v);
        if (v && nfsd_config_set(cfg, strings[i].key, v, why, sizeof why))
            return ENOMEM;      /* strings fail only so */
    }
    if (fl->nfs_port >= 0) cfg->nfs_port = fl->nfs_port;
    if (fl->mount_port >= 0) cfg->mount_port = fl->mount_port;
    if (fl->no_rpcbind) cfg->rpcbind = false;
    if (fl->no_udp) cfg->udp = false;
    if (fl->threads) cfg->threads = fl->threads;
    return 0;
}

/* Config file first, then flags on top. */
static int build_config(const struct flags *fl, struct nfsd_config *cfg)
{
    nfsd_config_defaults(cfg);
    const char *path = fl->config;
    if (!path && access(DEFAULT_CONFIG, F_OK) == 0)
        path = DEFAULT_CONFIG;
    if (path) {
        char err[512];
        int ret = nfsd_config_load(path, cfg, err, sizeof err);
        if (ret) {
            fprintf(stderr, "tarnfsd: %s\n", ret == ENOMEM ? "out of memory" : err);
            return ret;
        }
    }
    if (apply_flags(fl, cfg)) {
        fprintf(stderr, "tarnfsd: out of memory\n");
        return ENOMEM;
    }
    if (!cfg->threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->threads = (unsigned)(cores > 0 ? cores * 4 : 8);
        if (cfg->threads > 64)
            cfg->threads = 64;
    }
    if (!cfg->listeners) {
        /* One event loop per core tarnfsd may run on (taskset counts), at
         * most 8: doc/design.md, "What bounds scaling". */
        cpu_set_t set;
        long cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                                  : sysconf(_SC_NPROCESSORS_ONLN);
        cfg->listeners = cores < 1 ? 1 : cores > 8 ? 8 : (unsigned)cores;
    }
    if (!cfg->exports) {
        int ret = exports_default(fl->rw, &cfg->exports);
        if (ret)
            return ret;
    }
    if (!cfg->vfs.cache_dir) {
        fprintf(stderr, "tarnfsd: no cache directory: give --cache DIR or 'cache = DIR'\n");
        return EINVAL;
    }
    return 0;
}

/* --check-config's problems, kept until the whole file is read so that
 * a secret set on a later line can still be masked in them. */
struct problems {
    const char *path;
    char **v;
    size_t n;
    bool nomem;
};

static void problem_add(void *arg, unsigned line, const char *why)
{
    struct problems *p = arg;
    char **nv = realloc(p->v, (p->n + 1) * sizeof *nv);
    char *text = NULL;
    int len = line ? asprintf(&text, "%s:%u: %s", p->path, line, why)
                   : asprintf(&text, "%s: %s", p->path, why);
    if (nv)
        p->v = nv;
    if (!nv || len < 0) {
        p->nomem = true;
        return;
    }
    p->v[p->n++] = text;
}

/* Overwrite each occurrence of secret in text with '*'. */
static void mask(char *text, const char *secret)
{
    size_t n = secret ? strlen(secret) : 0;
    if (n < 4)      /* too short to tell from ordinary words */
        return;
    for (char *at = strstr(text, secret); at; at = strstr(at + n, secret))
        memset(at, '*', n);
}

/* tarnfsd --check-config: parse as a start would (every bad line, not
 * only the first), then nfsd_config_check; changes nothing.  Returns the
 * exit status: 0 OK, 1 problems. */
static int check_config(const struct flags *fl)
{
    const char *path = fl->check_file ? fl->check_file : fl->config ? fl->config
                                                                    : DEFAULT_CONFIG;
    struct nfsd_config cfg;
    nfsd_config_defaults(&cfg);
    struct problems p = { .path = path };
    char err[512] = "";
    int ret = nfsd_config_load_all(path, &cfg, problem_add, &p, err, sizeof err);
    if (ret && ret != EINVAL) {
        fprintf(stderr, "tarnfsd: %s\n", ret == ENOMEM ? "out of memory" : err);
        nfsd_config_free(&cfg);
        return 1;
    }
    if (apply_flags(fl, &cfg))
        p.nomem = true;
    nfsd_config_check(&cfg, problem_add, &p);
    const char *secrets[] = { cfg.vfs.fetch.secret_key, cfg.vfs.fetch.session_token,
                              getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN") };
    for (size_t i = 0; i < p.n; i++) {
        for (size_t j = 0; j < sizeof secrets / sizeof secrets[0]; j++)
            mask(p.v[i], secrets[j]);
        fprintf(stderr, "tarnfsd: %s\n", p.v[i]);
        free(p.v[i]);
    }
    free(p.v);
    if (p.nomem)
        fprintf(stderr, "tarnfsd: out of memory (some problems not shown)\n");
    int status = p.n || p.nomem ? 1 : 0;
    if (!status)
        fprintf(stderr, "tarnfsd: %s: configuration OK\n", path);
    nfsd_config_free(&cfg);
    return status;
}

/* Register the programs on TCP, and on UDP unless it is off: NFS and NLM
 * v4 on the NFS port, MOUNT on its own.  rpcbind may be absent: that is
 * only a warning, clients then need explicit ports. */
static void rpcbind_register(int nfs_port, int mount_port, bool udp)
{
    pmap_unset(NFS_PROG, NFS_VERS);
    pmap_unset(MOUNT_PROG, MOUNT_VERS);
    pmap_unset(NLM_PROG, NLM_VERS);
    bool ok = pmap_set(NFS_PROG, NFS_VERS, IPPROTO_TCP, nfs_port) &&
              (!udp || pmap_set(NFS_PROG, NFS_VERS, IPPROTO_UDP, nfs_port)) &&
              pmap_set(MOUNT_PROG, MOUNT_VERS, IPPROTO_TCP, mount_port) &&
              (!udp || pmap_set(MOUNT_PROG, MOUNT_VERS, IPPROTO_UDP, mount_port)) &&
              pmap_set(NLM_PROG, NLM_VERS, IPPROTO_TCP, nfs_port) &&
              (!udp || pmap_set(NLM_PROG, NLM_VERS, IPPROTO_UDP, nfs_port));
    if (ok)
        log_info("registered NFS v3 and NLM v4 (port %d) and MOUNT v3 (port %d) with "
                 "rpcbind%s", nfs_port, mount_port, udp ? "" : " (TCP only)");
    else
        log_warn("could not register with rpcbind (is it running?); clients must "
                 "give port=%d,mountport=%d and mount with nolock", nfs_port, mount_port);
}

static void rpcbind_unregister(void)
{
    pmap_unset(NFS_PROG, NFS_VERS);
    pmap_unset(MOUNT_PROG, MOUNT_VERS);
    pmap_unset(NLM_PROG, NLM_VERS);
}

static int write_file(const char *path, const char *text)
{
    return safe_write_file(path, text, strlen(text), 0644, false);
}

/* Raise the soft descriptor limit to the hard one, and warn when even that
 * leaves too few descriptors for max_conns connections plus the cache. */
static void nofile_check(unsigned max_conns)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < (rlim_t)max_conns + 256)
        log_warn("only %llu file descriptors for up to %u connections (max_connections) "
                 "and the cache: raise LimitNOFILE / ulimit -n", (unsigned long long)rl.rlim_cur,
                 max_conns);
}

/* Fork into the background; the parent exits once the child reports that
 * it serves (status 0) or failed.  Returns the fd to report on. */
static int daemonize(void)
{
    int p[2];
    if (pipe(p))
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        close(p[1]);
        char status = 1;
        if (read(p[0], &status, 1) != 1)
            status = 1;
        _exit(status);
    }
    close(p[0]);
    setsid();
    if (fork() > 0)
        _exit(0);
    if (chdir("/"))
        _exit(1);
    umask(022);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        dup2(null, 2);
        if (null > 2)
            close(null);
    }
    return p[1];
}

static void report(int fd, char status)
{
    if (fd >= 0) {
        if (write(fd, &status, 1) != 1)
            log_warn("could not report start-up status");
        close(fd);
    }
}

int main(int argc, char **argv)
{
    struct flags fl;
    if (parse_flags(argc, argv, &fl))
        return 2;
    log_setup("tarnfsd", 0, fl.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    if (fl.check_config)
        return check_config(&fl);
    /* READ replies (up to 1 MiB each) are malloc'd by a worker and freed
     * once the socket took them, often several per arena at once.  With
     * glibc's dynamic thresholds (trim at 2 x the largest freed mmap chunk)
     * each arena then gave its top back to the kernel and faulted it in
     * again: 120 page faults and a TLB shoot-down per READ, seqread 5x
     * slower.  Keep those buffers in the heap and trim only past 16 MiB. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    struct nfsd_config cfg;
    if (build_config(&fl, &cfg)) {
        nfsd_config_free(&cfg);
        return 2;
    }

    static struct nfsd srv;
    pthread_mutex_init(&srv.lock, NULL);
    drc_init(&srv.drc);
    /* With a source to fetch from, the cache is ours to create; without
     * one it must already hold runs (made by `tarnfs ingest`). */
    if (cfg.vfs.source && mkdir(cfg.vfs.cache_dir, 0700) != 0 && errno != EEXIST) {
        log_error("cannot create cache directory %s: %s", cfg.vfs.cache_dir, strerror(errno));
        nfsd_config_free(&cfg);
        return 1;
    }
    int ret = fh_key_load(cfg.vfs.cache_dir, &srv.key);
    if (ret == ENOENT) {
        log_error("cache directory %s does not exist", cfg.vfs.cache_dir);
        nfsd_config_free(&cfg);
        return 1;
    }
    if (ret) {
        log_error("cannot use handle key in %s: %s", cfg.vfs.cache_dir, strerror(ret));
        nfsd_config_free(&cfg);
        return 1;
    }
    if (fh_cache_new(&srv.key, &srv.fhc))
        srv.fhc = NULL;                 /* handles are made without it */
    if (cfg.listing_cache_bytes &&
        listcache_new(cfg.listing_cache_bytes, &srv.listcache))
        srv.listcache = NULL;           /* listings are made every time */
    /* A new verifier each start tells clients to resend unstable writes. */
    uint64_t verf = (uint64_t)time(NULL) << 32;
    uint32_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd)
        rnd = (uint32_t)getpid();
    verf |= rnd;
    memcpy(srv.write_verf, &verf, sizeof verf);

    int report_fd = -1;
    if (!fl.foreground) {
        report_fd = daemonize();
        if (report_fd < 0) {
            log_error("cannot daemonize: %s", strerror(errno));
            fh_cache_free(srv.fhc);
            listcache_free(srv.listcache);
            return 1;
        }
        log_setup("tarnfsd", 1, fl.verbose ? LOG_LVL_DEBUG : LOG_LVL_INFO);
    }
    /* Tests only (doc/testing.md): `tarnfs test-clock` may then advance
     * the clock grace periods and timeouts are decided by. */
    const char *test_clock = getenv("TARNFS_TEST_CLOCK");
    if (test_clock && strcmp(test_clock, "1") == 0) {
        tclock_enable_advance(true);
        log_warn("TARNFS_TEST_CLOCK=1: the clock of grace periods and "
                 "timeouts may be advanced through the control socket "
                 "(for tests; never in production)");
    }

    /* Signals are taken synchronously by the main thread; block them
     * before any thread starts so workers never see them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    srv.vfs_read_only = !exports_any_rw(cfg.exports);
    cfg.vfs.read_only = srv.vfs_read_only;
    ret = vfs_open(&cfg.vfs, &srv.vfs);
    if (ret) {
        log_error("cannot open the namespace in %s: %s", cfg.vfs.cache_dir, strerror(ret));
        report(report_fd, 1);
        nfsd_config_free(&cfg);
        fh_cache_free(srv.fhc);
        listcache_free(srv.listcache);
        return 1;
    }
    srv.exports = exports_ref(cfg.exports);

    struct rpc_server_config rc = {
        .listen = cfg.listen, .ports = { cfg.nfs_port, cfg.mount_port },
        .no_udp = !cfg.udp, .threads = cfg.threads, .loops = cfg.listeners,
        .max_record = { RPC_MAX_RECORD, MOUNT_MAX_RECORD },
        .limits = {
            .max_conns = cfg.max_connections,
            .max_conns_per_host = cfg.max_connections_per_host,
            .idle_timeout_ms = cfg.idle_timeout_ms, .reply_timeout_ms = cfg.reply_timeout_ms,
            .conn_buffer = (size_t)cfg.connection_buffer, .memory = (size_t)cfg.rpc_memory_limit,
            .park_timeout_ms = cfg.park_timeout_ms, .max_parked = cfg.max_parked,
        },
        .handler = nfsd_handle_call, .ctx = &srv,
    };
    nofile_check(cfg.max_connections ? cfg.max_connections : 1024);
    struct rpc_server *rs = NULL;
    ret = rpc_server_bind(&rc, &rs);
    if (ret) {
        log_error("cannot listen on NFS port %d / MOUNT port %d: %s", cfg.nfs_port,
                  cfg.mount_port, strerror(ret));
        report(report_fd, 1);
        vfs_close(srv.vfs);
        nfsd_config_free(&cfg);
        fh_cache_free(srv.fhc);
        listcache_free(srv.listcache);
        return 1;
    }
    int nfs_port = rpc_server_port(rs, 0), mount_port = rpc_server_port(rs, 1);
    ret = nlm_start(&srv, cfg.nlm_grace_ms, cfg.statd);
    if (ret) {
        log_error("cannot start the lock manager: %s", strerror(ret));
        report(report_fd, 1);
        return 1;
    }
    /* The counters exist before the first call; the endpoint serves once
     * the workers run. */
    if (cfg.metrics_listen && (ret = metrics_new(&srv.metrics))) {
        log_error("metrics: %s", strerror(ret));
        report(report_fd, 1);
        return 1;
    }
    ret = rpc_server_start(rs);
    if (ret) {
        log_error("cannot start threads: %s", strerror(ret));
        report(report_fd, 1);
        fh_cache_free(srv.fhc);
        listcache_free(srv.listcache);
        return 1;
    }
    if (cfg.metrics_listen) {
        metrics_set_listcache(srv.metrics, srv.listcache);
        ret = metrics_serve(srv.metrics, cfg.metrics_listen, srv.vfs, rs);
        if (ret) {
            report(report_fd, 1);
            vfs_cancel(srv.vfs);
            rpc_server_destroy(rs);
            nlm_stop(&srv);
            vfs_close(srv.vfs);
            metrics_free(srv.metrics);
            nfsd_config_free(&cfg);
            return 1;
        }
        log_info("metrics: serving /metrics on %s, port %d", cfg.metrics_listen,
                 metrics_port(srv.metrics));
    }
    if (cfg.rpcbind)
        rpcbind_register(nfs_port, mount_port, cfg.udp);
    const char *pidfile = cfg.pidfile ? cfg.pidfile : DEFAULT_PIDFILE;
    char text[64];
    if (!fl.foreground) {
        snprintf(text, sizeof text, "%ld\n", (long)getpid());
        if ((ret = write_file(pidfile, text)))
            log_warn("cannot write pidfile %s: %s", pidfile, strerror(ret));
    }
    if (fl.port_file) {
        snprintf(text, sizeof text, "%d %d\n", nfs_port, mount_port);
        if ((ret = write_file(fl.port_file, text)))
            log_warn("cannot write port file %s: %s", fl.port_file, strerror(ret));
    }
    log_info("serving %s%s%s (%s) on NFS port %d, MOUNT port %d, %u threads, %u listeners",
             cfg.vfs.cache_dir, cfg.vfs.source ? " + " : "", cfg.vfs.source ? cfg.vfs.source : "",
             srv.vfs_read_only ? "read-only" : "read-write", nfs_port, mount_port,
             cfg.threads, cfg.listeners);
    report(report_fd, 0);
    /* Type=notify readiness (a no-op without NOTIFY_SOCKET): the ports are
     * bound and the workers run. */
    sd_notifyf(0, "READY=1\nSTATUS=serving on NFS port %d, MOUNT port %d", nfs_port,
               mount_port);

    for (;;) {
        int sig = 0;
        if (sigwait(&sigs, &sig))
            continue;
        if (sig != SIGHUP)
            break;
        const char *path = fl.config ? fl.config
                         : access(DEFAULT_CONFIG, F_OK) == 0 ? DEFAULT_CONFIG : NULL;
        struct nfsd_config fresh;
        nfsd_config_defaults(&fresh);
        char err[512] = "";
        ret = path ? nfsd_config_load(path, &fresh, err, sizeof err) : 0;
        if (ret) {
            log_error("SIGHUP: keeping the old exports: %s", err);
        } else if (!fresh.exports) {
            /* Never widen to the built-in "/ *" on a reload: a config that
             * lost its export lines is more likely a mistake than a wish. */
            log_error("SIGHUP: keeping the old exports: %s%s (restart to serve the "
                      "built-in default)", path ? path : "there is no config file",
                      path ? " has no export lines" : "");
        } else {
            if (exports_any_rw(fresh.exports) && srv.vfs_read_only)
                log_warn("SIGHUP: rw exports need a restart; they stay read-only");
            nfsd_exports_set(&srv, exports_ref(fresh.exports));
            log_info("SIGHUP: exports reloaded (%zu)", fresh.exports->n);
        }
        nfsd_config_free(&fresh);
    }

    log_info("shutting down");
    sd_notify(0, "STOPPING=1");
    if (cfg.rpcbind)
        rpcbind_unregister();
    /* Fetches in flight are cancelled and parked calls called back first,
     * so nothing resumes a call after the transport is gone. */
    metrics_stop(srv.metrics);      /* no scrape reads vfs or rs after this */
    vfs_cancel(srv.vfs);
    rpc_server_destroy(rs);
    nlm_stop(&srv);
    vfs_close(srv.vfs);
    metrics_free(srv.metrics);
    srv.metrics = NULL;
    nfsd_exports_set(&srv, NULL);
    nfsd_mounts_clear(&srv);
    drc_free(&srv.drc);
    fh_cache_free(srv.fhc);
    listcache_free(srv.listcache);
    if (!fl.foreground)
        unlink(pidfile);
    nfsd_config_free(&cfg);
    log_info("stopped");
    return 0;
}
