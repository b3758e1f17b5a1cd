/* config.h: tarnfsd settings and exports, read from tarnfs.conf (see
 * tarnfs.conf(5)); command-line flags are applied on top by tarnfsd.c. */
#ifndef TARNFS_NFSD_CONFIG_H
#define TARNFS_NFSD_CONFIG_H

#include "vfs/vfs.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Per-client export options, in /etc/exports words. */
struct export_opts {
    bool rw;
    bool root_squash;
    bool all_squash;
    bool secure;            /* require a source port < 1024 */
    uint32_t anonuid, anongid;
};

/* One client pattern: '*', a CIDR (v4 stored v4-mapped), or a host that was
 * resolved into addresses when the config was read. */
struct export_client {
    bool any;
    struct in6_addr addr;
    unsigned prefix;        /* 0..128 over the v6 (or v4-mapped) address */
    struct export_opts opts;
};

struct export {
    char *path;             /* "/" or "/run/sub", no trailing '/' */
    uint8_t id;             /* carried in file handles */
    struct export_client *clients;
    size_t nclients;
};

/* An immutable exports table, shared by reference while requests use it. */
struct exports {
    atomic_int refs;
    uint64_t serial;        /* no two tables of a process share one */
    struct export *v;
    size_t n;
};

#define NFSD_LISTING_CACHE_DEFAULT ((uint64_t)64 << 20)

struct nfsd_config {
    /* What tarnfsd hands to vfs_open: cache, source, S3 (vfs.fetch), cache
     * sizes, fetching, write-back (vfs_settings' rows; the strings are
     * owned here).  vfs.read_only is tarnfsd's, from the exports. */
    struct vfs_config vfs;
    char *listen, *pidfile;
    char *metrics_listen;               /* NULL: no metrics endpoint */
    int nfs_port, mount_port;           /* 0 = ephemeral */
    bool rpcbind;
    unsigned threads;
    unsigned listeners;                 /* transport event loops; 0: tarnfsd picks */
    /* Transport limits (tarnfsd(8) LIMITS); 0 = the transport's default. */
    bool udp;                           /* serve UDP (default yes) */
    unsigned max_connections, max_connections_per_host;
    unsigned idle_timeout_ms;           /* UINT_MAX = never ("0" in the file) */
    unsigned reply_timeout_ms;
    uint64_t connection_buffer, rpc_memory_limit;
    /* Parked requests (doc/design.md); 0 = the default. */
    unsigned park_timeout_ms, max_parked;
    unsigned nlm_grace_ms;              /* NLM grace period after a start (90 s); 0 = none */
    bool statd;                         /* SM_MON lock holders with rpc.statd (yes) */
    uint64_t listing_cache_bytes;       /* encoded listings kept (nfsd/listcache.h);
                                           0: none */
    struct exports *exports;            /* NULL until set */
    /* The config line each of these was set on (0: the default, or a
     * flag), for tarnfsd --check-config's messages. */
    struct {
        unsigned cache, source, s3_access_key, s3_secret_key,
                 high_watermark, low_watermark, nfs_port, mount_port, listen,
                 metrics_listen;
    } line;
};

/* Every tarnfs.conf setting tarnfsd reads (util/settings.h): its own rows,
 * and vfs_settings' at vfs.  Export lines are not settings. */
struct setting_table;
extern const struct setting_table nfsd_settings;

/* Set one setting of cfg as a "key = value" line would (the flags use it
 * too).  Errors: EINVAL (why says why: unknown key, bad value), ENOMEM. */
int nfsd_config_set(struct nfsd_config *cfg, const char *key, const char *value,
                    char *why, size_t whylen);

/* One problem found in a config: line (0: none in particular) and why
 * (never a secret the file holds). */
typedef void (*nfsd_problem_fn)(void *arg, unsigned line, const char *why);

/* Parse "IPV4:PORT" or "[IPV6]:PORT" (address literals only, port
 * 0-65535) into ss (metrics_listen).  Errors: EINVAL. */
int nfsd_parse_sockaddr(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/* Fill cfg with the built-in defaults (ports 2049/20048, rpcbind on, no
 * exports yet).  Never fails. */
void nfsd_config_defaults(struct nfsd_config *cfg);

/* Read path into cfg (settings and exports).  Errors: ENOENT/EACCES (file),
 * EINVAL (a bad line; err says "FILE:LINE: why"), ENOMEM. */
int nfsd_config_load(const char *path, struct nfsd_config *cfg, char *err,
                     size_t errlen);

/* As nfsd_config_load, but a bad line does not stop the reading: each is
 * given to problem (with its line number; the rest of the file still
 * applies).  Errors: ENOENT/EACCES (file; err says so), EINVAL (one or more
 * problems were reported), ENOMEM. */
int nfsd_config_load_all(const char *path, struct nfsd_config *cfg,
                         nfsd_problem_fn problem, void *arg, char *err,
                         size_t errlen);

/* What a start would only find out later, without changing anything (no
 * directory made, no socket, no network): the cache exists or can be
 * made, the source would open (credentials present for S3), the limits
 * agree, the listen address resolves.  Each problem goes to problem;
 * returns how many there were. */
unsigned nfsd_config_check(const struct nfsd_config *cfg, nfsd_problem_fn problem,
                           void *arg);

/* Build the default table: one export "/" for every client, ro unless rw,
 * root_squash, insecure.  Errors: ENOMEM. */
int exports_default(bool rw, struct exports **out);

/* Parse one export line body ("PATH CLIENT(OPTS) ...") and append it to
 * *ex.  Errors: EINVAL (err says why), ENOMEM. */
int exports_add_line(struct exports *ex, const char *line, char *err,
                     size_t errlen);

/* Take / drop a reference on an exports table. */
struct exports *exports_ref(struct exports *ex);
void exports_unref(struct exports *ex);

/* The options that apply to peer for export e, or NULL when it is not
 * allowed: those of the most specific matching pattern, as exports(5) (a
 * host over a longer CIDR prefix over a shorter one over '*'; the first
 * among equals).  v4-mapped v6 peers match v4 patterns. */
const struct export_opts *export_match(const struct export *e,
                                       const struct sockaddr *peer);

/* True when some export of ex admits peer (DUMP and EXPORT answer only
 * such hosts). */
bool exports_admit(const struct exports *ex, const struct sockaddr *peer);

/* The export with handle id id, or NULL. */
const struct export *exports_by_id(const struct exports *ex, uint8_t id);

/* True when any export allows writes to any client. */
bool exports_any_rw(const struct exports *ex);

/* Free what cfg owns (strings and exports reference). */
void nfsd_config_free(struct nfsd_config *cfg);

#endif
