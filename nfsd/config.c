/* config.c: reads tarnfs.conf (settings and /etc/exports-style export lines) and
 * matches client addresses against exports. */
#include "nfsd/config.h"
#include "nfsd/rpc_server.h"
#include "vfs/vfs.h"
#include "util/conf.h"
#include "util/settings.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANON_ID 65534u

void nfsd_config_defaults(struct nfsd_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->nfs_port = 2049;
    cfg->mount_port = 20048;
    cfg->rpcbind = true;
    cfg->udp = true;
    cfg->threads = 0;   /* tarnfsd picks 4 * cores */
    cfg->listeners = 0; /* tarnfsd picks: cores it may run on, at most 8 */
    cfg->vfs.prefetch_auto = true;  /* chosen by measurement: doc/performance.md */
    cfg->vfs.prefetch_whole_below = VFS_PREFETCH_WHOLE_BELOW;
    cfg->nlm_grace_ms = 90000;  /* as knfsd's lockd and NFS-Ganesha */
    cfg->statd = true;
    cfg->listing_cache_bytes = NFSD_LISTING_CACHE_DEFAULT;
}

struct exports *exports_ref(struct exports *ex)
{
    if (ex)
        atomic_fetch_add(&ex->refs, 1);
    return ex;
}

void exports_unref(struct exports *ex)
{
    if (!ex || atomic_fetch_sub(&ex->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ex->n; i++) {
        free(ex->v[i].path);
        free(ex->v[i].clients);
    }
    free(ex->v);
    free(ex);
}

static struct exports *exports_new(void)
{
    static _Atomic uint64_t serials;
    struct exports *ex = calloc(1, sizeof *ex);
    if (ex) {
        atomic_init(&ex->refs, 1);
        ex->serial = atomic_fetch_add(&serials, 1) + 1;
    }
    return ex;
}

void nfsd_config_free(struct nfsd_config *cfg)
{
    settings_free(&nfsd_settings, cfg);
    exports_unref(cfg->exports);
    memset(cfg, 0, sizeof *cfg);
}

static void default_opts(struct export_opts *o)
{
    memset(o, 0, sizeof *o);
    o->root_squash = true;
    o->anonuid = ANON_ID;
    o->anongid = ANON_ID;
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > UINT32_MAX)
        return EINVAL;
    *out = (uint32_t)v;
    return 0;
}

/* Apply a comma-separated /etc/exports option list to o. */
static int parse_opts(char *list, struct export_opts *o, char *err, size_t errlen)
{
    for (char *save = NULL, *w = strtok_r(list, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(w, '=');
        if (eq)
            *eq++ = 0;
        if (!strcmp(w, "ro")) o->rw = false;
        else if (!strcmp(w, "rw")) o->rw = true;
        else if (!strcmp(w, "root_squash")) o->root_squash = true;
        else if (!strcmp(w, "no_root_squash")) o->root_squash = false;
        else if (!strcmp(w, "all_squash")) o->all_squash = true;
        else if (!strcmp(w, "no_all_squash")) o->all_squash = false;
        else if (!strcmp(w, "secure")) o->secure = true;
        else if (!strcmp(w, "insecure")) o->secure = false;
        else if (!strcmp(w, "sync") || !strcmp(w, "async") ||
                 !strcmp(w, "no_subtree_check") || !strcmp(w, "subtree_check"))
            continue;   /* accepted for familiarity; tarnfsd behaves the same */
        else if ((!strcmp(w, "anonuid") || !strcmp(w, "anongid")) && eq) {
            uint32_t v;
            if (parse_u32(eq, &v)) {
                snprintf(err, errlen, "bad number '%s' for %s", eq, w);
                return EINVAL;
            }
            if (w[4] == 'u')
                o->anonuid = v;
            else
                o->anongid = v;
        } else {
            snprintf(err, errlen, "unknown export option '%s'", w);
            return EINVAL;
        }
    }
    return 0;
}

static int add_client(struct export *e, const struct export_client *c)
{
    struct export_client *nv = realloc(e->clients, (e->nclients + 1) * sizeof *nv);
    if (!nv)
        return ENOMEM;
    e->clients = nv;
    e->clients[e->nclients++] = *c;
    return 0;
}

static void v4_mapped(struct in6_addr *a, const struct in_addr *v4)
{
    memset(a, 0, sizeof *a);
    a->s6_addr[10] = 0xff;
    a->s6_addr[11] = 0xff;
    memcpy(&a->s6_addr[12], v4, 4);
}

/* Parse one client pattern (without its options) into e's client list. */
static int parse_client(struct export *e, char *pat, const struct export_opts *o,
                        char *err, size_t errlen)
{
    struct export_client c;
    memset(&c, 0, sizeof c);
    c.opts = *o;
    if (!strcmp(pat, "*")) {
        c.any = true;
        return add_client(e, &c);
    }
    char *slash = strchr(pat, '/');
    int prefix = -1;
    if (slash) {
        *slash++ = 0;
        uint32_t p;
        if (parse_u32(slash, &p) || p > 128) {
            snprintf(err, errlen, "bad prefix length '/%s'", slash);
            return EINVAL;
        }
        prefix = (int)p;
    }
    struct in_addr v4;
    if (inet_pton(AF_INET, pat, &v4) == 1) {
        if (prefix > 32) {
            snprintf(err, errlen, "prefix /%d too long for %s", prefix, pat);
            return EINVAL;
        }
        v4_mapped(&c.addr, &v4);
        c.prefix = prefix < 0 ? 128 : 96 + (unsigned)prefix;
        return add_client(e, &c);
    }
    if (inet_pton(AF_INET6, pat, &c.addr) == 1) {
        c.prefix = prefix < 0 ? 128 : (unsigned)prefix;
        return add_client(e, &c);
    }
    if (slash) {
        snprintf(err, errlen, "'%s' is not an address", pat);
        return EINVAL;
    }
    /* A host name: resolve now, so per-call checks never block on DNS. */
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
    int rc = getaddrinfo(pat, NULL, &hints, &res);
    if (rc) {
        snprintf(err, errlen, "cannot resolve client '%s': %s", pat, gai_strerror(rc));
        return EINVAL;
    }
    int ret = 0;
    for (struct addrinfo *ai = res; ai && !ret; ai = ai->ai_next) {
        if (ai->ai_family == AF_INET)
            v4_mapped(&c.addr, &((struct sockaddr_in *)ai->ai_addr)->sin_addr);
        else if (ai->ai_family == AF_INET6)
            c.addr = ((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        else
            continue;
        c.prefix = 128;
        ret = add_client(e, &c);
    }
    freeaddrinfo(res);
    return ret;
}

static uint8_t path_hash(const char *p)
{
    uint32_t h = 2166136261u;           /* FNV-1a: stable across restarts */
    for (; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return (uint8_t)(h ^ (h >> 8) ^ (h >> 16) ^ (h >> 24));
}

static int normalize_path(const char *in, char **out)
{
    if (in[0] != '/')
        return EINVAL;
    size_t n = strlen(in);
    char *p = malloc(n + 1);
    if (!p)
        return ENOMEM;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == '/' && j && p[j - 1] == '/')
            continue;
        p[j++] = in[i];
    }
    while (j > 1 && p[j - 1] == '/')
        j--;
    p[j] = 0;
    *out = p;
    return 0;
}

int exports_add_line(struct exports *ex, const char *line, char *err, size_t errlen)
{
    char *buf = strdup(line);
    if (!buf)
        return ENOMEM;
    struct export e;
    memset(&e, 0, sizeof e);
    int ret = 0;
    char *save = NULL;
    char *path = strtok_r(buf, " \t", &save);
    if (!path || normalize_path(path, &e.path)) {
        snprintf(err, errlen, "export needs an absolute path");
        ret = EINVAL;
        goto out;
    }
    for (size_t i = 0; i < ex->n; i++)
        if (!strcmp(ex->v[i].path, e.path)) {
            snprintf(err, errlen, "export %s given twice", e.path);
            ret = EINVAL;
            goto out;
        }
    for (char *tok = strtok_r(NULL, " \t", &save); tok && !ret;
         tok = strtok_r(NULL, " \t", &save)) {
        struct export_opts o;
        default_opts(&o);
        char *paren = strchr(tok, '(');
        if (paren) {
            size_t tl = strlen(tok);
            if (tok[tl - 1] != ')') {
                snprintf(err, errlen, "missing ')' in '%s'", tok);
                ret = EINVAL;
                break;
            }
            tok[tl - 1] = 0;
            *paren = 0;
            if ((ret = parse_opts(paren + 1, &o, err, errlen)))
                break;
        }
        if (!*tok) {
            snprintf(err, errlen, "options without a client");
            ret = EINVAL;
            break;
        }
        ret = parse_client(&e, tok, &o, err, errlen);
    }
    if (ret)
        goto out;
    if (!e.nclients) {
        snprintf(err, errlen, "export %s lists no clients", e.path);
        ret = EINVAL;
        goto out;
    }
    /* Ids come from the path so they survive restarts and reordering;
     * collisions (rare, <256 exports) are probed in file order. */
    e.id = path_hash(e.path);
    for (unsigned tries = 0; exports_by_id(ex, e.id); tries++) {
        if (tries > 255) {
            snprintf(err, errlen, "too many exports");
            ret = EINVAL;
            goto out;
        }
        e.id++;
    }
    struct export *nv = realloc(ex->v, (ex->n + 1) * sizeof *nv);
    if (!nv) {
        ret = ENOMEM;
        goto out;
    }
    ex->v = nv;
    ex->v[ex->n++] = e;
    free(buf);
    return 0;
out:
    free(e.path);
    free(e.clients);
    free(buf);
    return ret;
}

int exports_default(bool rw, struct exports **out)
{
    struct exports *ex = exports_new();
    char err[128];
    if (!ex)
        return ENOMEM;
    int ret = exports_add_line(ex, rw ? "/ *(rw,insecure)" : "/ *(ro,insecure)",
                               err, sizeof err);
    if (ret) {
        exports_unref(ex);
        return ret;
    }
    *out = ex;
    return 0;
}

const struct export *exports_by_id(const struct exports *ex, uint8_t id)
{
    for (size_t i = 0; ex && i < ex->n; i++)
        if (ex->v[i].id == id)
            return &ex->v[i];
    return NULL;
}

bool exports_any_rw(const struct exports *ex)
{
    for (size_t i = 0; ex && i < ex->n; i++)
        for (size_t j = 0; j < ex->v[i].nclients; j++)
            if (ex->v[i].clients[j].opts.rw)
                return true;
    return false;
}

static bool prefix_equal(const struct in6_addr *a, const struct in6_addr *b,
                         unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;
    if (memcmp(a->s6_addr, b->s6_addr, full))
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a->s6_addr[full] & mask) == (b->s6_addr[full] & mask);
}

const struct export_opts *export_match(const struct export *e,
                                       const struct sockaddr *peer)
{
    struct in6_addr a;
    if (peer->sa_family == AF_INET)
        v4_mapped(&a, &((const struct sockaddr_in *)peer)->sin_addr);
    else if (peer->sa_family == AF_INET6)
        a = ((const struct sockaddr_in6 *)peer)->sin6_addr;
    else
        return NULL;
    /* As exports(5): the most specific pattern wins, whatever the order:
     * a single host (a name or a full address) over a longer CIDR prefix
     * over a shorter one over '*'; among equals, the first. */
    const struct export_client *best = NULL;
    int best_rank = -1;
    for (size_t i = 0; i < e->nclients; i++) {
        const struct export_client *c = &e->clients[i];
        int rank = c->any ? 0 : 1 + (int)c->prefix;
        if (rank > best_rank && (c->any || prefix_equal(&a, &c->addr, c->prefix))) {
            best = c;
            best_rank = rank;
        }
    }
    return best ? &best->opts : NULL;
}

bool exports_admit(const struct exports *ex, const struct sockaddr *peer)
{
    for (size_t i = 0; ex && i < ex->n; i++)
        if (export_match(&ex->v[i], peer))
            return true;
    return false;
}

int nfsd_parse_sockaddr(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port;
    memset(ss, 0, sizeof *ss);
    if (!s)
        return EINVAL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return EINVAL;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || (size_t)(colon - s) >= sizeof host ||
            memchr(s, ':', (size_t)(colon - s)))
            return EINVAL;          /* an IPv6 literal needs brackets */
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
        port = colon + 1;
    }
    if (!*port || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
        return EINVAL;
    unsigned long p = strtoul(port, NULL, 10);
    if (p > 65535)
        return EINVAL;
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (s[0] != '[' && inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)p);
        *len = sizeof *a4;
    } else if (s[0] == '[' && inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)p);
        *len = sizeof *a6;
    } else {
        return EINVAL;
    }
    return 0;
}

/* metrics_listen: an address literal with a port (kept as written). */
static int check_metrics_listen(void *base, const char *v, char *why, size_t whylen)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    (void)base;
    if (nfsd_parse_sockaddr(v, &ss, &sl)) {
        snprintf(why, whylen, "want IPV4:PORT or [IPV6]:PORT (address literals)");
        return EINVAL;
    }
    return 0;
}

#define AT(field) offsetof(struct nfsd_config, field)

/* tarnfsd's own settings, then (at vfs) those it hands to vfs_open.  Every
 * one is documented in tarnfs.conf(5) (tests/util/test_settings checks). */
static const struct setting rows[] = {
    { "listen", SET_STRING, AT(listen), 0, 0, 0, NULL, NULL },
    { "metrics_listen", SET_STRING, AT(metrics_listen), 0, 0, 0, check_metrics_listen,
      NULL },
    { "pidfile", SET_STRING, AT(pidfile), 0, 0, 0, NULL, NULL },
    { "nfs_port", SET_PORT, AT(nfs_port), 0, 0, 0, NULL, NULL },
    { "mount_port", SET_PORT, AT(mount_port), 0, 0, 0, NULL, NULL },
    { "rpcbind", SET_BOOL, AT(rpcbind), 0, 0, 0, NULL, NULL },
    { "udp", SET_BOOL, AT(udp), 0, 0, 0, NULL, NULL },
    { "threads", SET_UINT, AT(threads), 1, 1024, 0, NULL, NULL },
    { "listeners", SET_UINT, AT(listeners), 1, RPC_LOOPS_MAX, 0, NULL, NULL },
    { "max_connections", SET_UINT, AT(max_connections), 1, 1000000, 0, NULL, NULL },
    { "max_connections_per_host", SET_UINT, AT(max_connections_per_host), 1, 1000000, 0,
      NULL, NULL },
    /* 0: never (UINT_MAX). */
    { "idle_timeout", SET_DURATION, AT(idle_timeout_ms), 0, 0, SETTING_ZERO_MAX, NULL,
      NULL },
    { "reply_timeout", SET_DURATION, AT(reply_timeout_ms), 100, 0, 0, NULL, NULL },
    { "connection_buffer", SET_SIZE, AT(connection_buffer), 64 << 10, (uint64_t)1 << 40, 0,
      NULL, NULL },
    { "rpc_memory_limit", SET_SIZE, AT(rpc_memory_limit), 64 << 10, (uint64_t)1 << 40, 0,
      NULL, NULL },
    { "park_timeout", SET_DURATION, AT(park_timeout_ms), 100, 0, 0, NULL, NULL },
    { "max_parked", SET_UINT, AT(max_parked), 1, 1000000, 0, NULL, NULL },
    { "nlm_grace", SET_DURATION, AT(nlm_grace_ms), 0, 3600000, 0, NULL, NULL },
    { "statd", SET_BOOL, AT(statd), 0, 0, 0, NULL, NULL },
    { "listing_cache", SET_SIZE, AT(listing_cache_bytes), 0, (uint64_t)1 << 40, 0, NULL,
      NULL },
    { NULL, SET_TABLE, AT(vfs), 0, 0, 0, NULL, &vfs_settings },
};

const struct setting_table nfsd_settings = { rows, sizeof rows / sizeof rows[0] };

int nfsd_config_set(struct nfsd_config *cfg, const char *key, const char *value,
                    char *why, size_t whylen)
{
    return settings_apply(&nfsd_settings, cfg, key, value, why, whylen);
}

/* Remember on which line a setting that --check-config may complain
 * about was set. */
static void note_line(struct nfsd_config *cfg, const char *k, unsigned lineno)
{
    static const struct { const char *key; size_t off; } keys[] = {
        { "cache", offsetof(struct nfsd_config, line.cache) },
        { "source", offsetof(struct nfsd_config, line.source) },
        { "s3_access_key_id", offsetof(struct nfsd_config, line.s3_access_key) },
        { "s3_secret_access_key", offsetof(struct nfsd_config, line.s3_secret_key) },
        { "high_watermark", offsetof(struct nfsd_config, line.high_watermark) },
        { "low_watermark", offsetof(struct nfsd_config, line.low_watermark) },
        { "nfs_port", offsetof(struct nfsd_config, line.nfs_port) },
        { "mount_port", offsetof(struct nfsd_config, line.mount_port) },
        { "listen", offsetof(struct nfsd_config, line.listen) },
        { "metrics_listen", offsetof(struct nfsd_config, line.metrics_listen) },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!strcmp(k, keys[i].key))
            memcpy((char *)cfg + keys[i].off, &lineno, sizeof lineno);
}

/* Read path; with problem NULL stop at the first bad line (err says
 * "FILE:LINE: why"), else report each and go on. */
struct load_ctx {
    struct nfsd_config *cfg;
    struct exports *ex;
};

static int load_line(void *arg, unsigned lineno, char *key, char *value,
                     char *why, size_t whylen)
{
    struct load_ctx *l = arg;
    if (!strcmp(key, "export"))
        return exports_add_line(l->ex, value, why, whylen);
    int ret = nfsd_config_set(l->cfg, key, value, why, whylen);
    if (!ret)
        note_line(l->cfg, key, lineno);
    return ret;
}

static int load(const char *path, struct nfsd_config *cfg, nfsd_problem_fn problem,
                void *arg, char *err, size_t errlen)
{
    struct load_ctx l = { cfg, exports_new() };
    if (!l.ex)
        return ENOMEM;
    unsigned problems = 0;
    int ret = conf_read(path, load_line, &l, problem, arg, &problems, err, errlen);
    if (!ret && problems) {
        snprintf(err, errlen, "%s: %u problem%s", path, problems, problems == 1 ? "" : "s");
        ret = EINVAL;
    }
    if (ret) {
        exports_unref(l.ex);
        return ret;
    }
    if (l.ex->n) {
        exports_unref(cfg->exports);
        cfg->exports = l.ex;
    } else {
        exports_unref(l.ex);
    }
    return 0;
}

int nfsd_config_load(const char *path, struct nfsd_config *cfg, char *err, size_t errlen)
{
    return load(path, cfg, NULL, NULL, err, errlen);
}

int nfsd_config_load_all(const char *path, struct nfsd_config *cfg,
                         nfsd_problem_fn problem, void *arg, char *err, size_t errlen)
{
    return load(path, cfg, problem, arg, err, errlen);
}
