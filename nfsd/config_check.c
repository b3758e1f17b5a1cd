/* config_check.c: what tarnfsd --check-config checks beyond parsing: cache, source,
 * credentials and the limits that only a start would trip over, changing nothing. */
#include "nfsd/config.h"
#include "vfs/vfs.h"

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The cache as tarnfsd's start uses it: created (one level, by mkdir) when
 * there is a source, else it must exist; readable and writable (the
 * handle key and the runs' databases are made in it). */
static unsigned check_cache(const struct nfsd_config *cfg, nfsd_problem_fn problem, void *arg)
{
    char why[PATH_MAX * 2 + 100];
    unsigned line = cfg->line.cache;
    if (!cfg->vfs.cache_dir || !*cfg->vfs.cache_dir) {
        problem(arg, 0, "no cache directory: give 'cache = DIR' or --cache DIR");
        return 1;
    }
    const char *dir = cfg->vfs.cache_dir;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(why, sizeof why, "cache %s is not a directory", dir);
            problem(arg, line, why);
            return 1;
        }
        if (access(dir, R_OK | W_OK | X_OK) != 0) {
            snprintf(why, sizeof why, "cache directory %s: %s", dir, strerror(errno));
            problem(arg, line, why);
            return 1;
        }
        /* Without a source nothing makes it a cache: it must be one. */
        if (!cfg->vfs.source && vfs_cache_probe(dir) == EINVAL) {
            snprintf(why, sizeof why, "cache directory %s is not a tarnfs cache and no "
                     "source is set: set 'source' (a NAS directory or s3://BUCKET/PREFIX), "
                     "or put runs in it with 'tarnfs ingest --cache %s TARBALL'", dir, dir);
            problem(arg, line, why);
            return 1;
        }
        return 0;
    }
    int e = errno;
    if (e != ENOENT) {
        snprintf(why, sizeof why, "cache directory %s: %s", dir, strerror(e));
        problem(arg, line, why);
        return 1;
    }
    if (!cfg->vfs.source) {
        snprintf(why, sizeof why, "cache directory %s does not exist (without a source it is "
                 "not created: it must hold runs made by 'tarnfs ingest')", dir);
        problem(arg, line, why);
        return 1;
    }
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", dir);
    const char *parent = dirname(copy);
    if (stat(parent, &st) != 0)
        e = errno;
    else if (!S_ISDIR(st.st_mode))
        e = ENOTDIR;
    else if (access(parent, W_OK | X_OK) != 0)
        e = errno;
    else
        return 0;
    snprintf(why, sizeof why, "cache directory %s cannot be created: %s: %s", dir, parent,
             strerror(e));
    problem(arg, line, why);
    return 1;
}

static unsigned check_source(const struct nfsd_config *cfg, nfsd_problem_fn problem, void *arg)
{
    char why[700], msg[512] = "";
    unsigned n = 0;
    bool s3 = !strncmp(cfg->vfs.source, "s3://", 5);
    if (s3 && !cfg->vfs.fetch.access_key != !cfg->vfs.fetch.secret_key) {
        snprintf(why, sizeof why, "%s is set but %s is not",
                 cfg->vfs.fetch.access_key ? "s3_access_key_id" : "s3_secret_access_key",
                 cfg->vfs.fetch.access_key ? "s3_secret_access_key" : "s3_access_key_id");
        problem(arg, cfg->vfs.fetch.access_key ? cfg->line.s3_access_key : cfg->line.s3_secret_key, why);
        n++;
    }
    int rc = vfs_check_source(&cfg->vfs, msg, sizeof msg);
    if (rc) {
        snprintf(why, sizeof why, "source: %s", msg[0] ? msg : strerror(rc));
        problem(arg, cfg->line.source, why);
        n++;
    }
    return n;
}

unsigned nfsd_config_check(const struct nfsd_config *cfg, nfsd_problem_fn problem, void *arg)
{
    char why[300];
    unsigned n = check_cache(cfg, problem, arg);
    if (cfg->vfs.source)
        n += check_source(cfg, problem, arg);
    /* As vfs_open: low < high (each defaulted as there). */
    unsigned high = cfg->vfs.high_watermark_pct ? cfg->vfs.high_watermark_pct : 90;
    unsigned low = cfg->vfs.low_watermark_pct ? cfg->vfs.low_watermark_pct : 75;
    if (low >= high) {
        snprintf(why, sizeof why, "low_watermark (%u) must be below high_watermark (%u)", low, high);
        problem(arg, cfg->line.low_watermark ? cfg->line.low_watermark : cfg->line.high_watermark,
                why);
        n++;
    }
    if (cfg->nfs_port && cfg->nfs_port == cfg->mount_port) {
        snprintf(why, sizeof why, "nfs_port and mount_port are both %d", cfg->nfs_port);
        problem(arg, cfg->line.mount_port ? cfg->line.mount_port : cfg->line.nfs_port, why);
        n++;
    }
    if (cfg->listen && *cfg->listen) {
        /* As the transport resolves it at bind. */
        struct addrinfo hints = { .ai_flags = AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *res;
        int rc = getaddrinfo(cfg->listen, NULL, &hints, &res);
        if (rc) {
            snprintf(why, sizeof why, "cannot use listen address '%s': %s", cfg->listen,
                     gai_strerror(rc));
            problem(arg, cfg->line.listen, why);
            n++;
        } else {
            freeaddrinfo(res);
        }
    }
    if (cfg->metrics_listen) {
        /* Parsed when read; a port the NFS service takes would never bind. */
        struct sockaddr_storage ss;
        socklen_t sl;
        if (nfsd_parse_sockaddr(cfg->metrics_listen, &ss, &sl) == 0) {
            int port = ntohs(ss.ss_family == AF_INET6
                             ? ((struct sockaddr_in6 *)&ss)->sin6_port
                             : ((struct sockaddr_in *)&ss)->sin_port);
            if (port && (port == cfg->nfs_port || port == cfg->mount_port)) {
                snprintf(why, sizeof why, "metrics_listen port %d is also the %s port", port,
                         port == cfg->nfs_port ? "NFS" : "MOUNT");
                problem(arg, cfg->line.metrics_listen, why);
                n++;
            }
        }
    }
    return n;
}
